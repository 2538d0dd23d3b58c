// The imports page: upload the chosen file as the request body (streamed by the browser, with its progress),
// then follow the imports' progress until none is running, and the export jobs' until each is ready.
(function () {
  "use strict";
  var form = document.getElementById("import-form");
  if (!form) return;
  var domain = form.dataset.domain;
  var message = document.getElementById("import-message");
  var bar = document.getElementById("upload-progress");

  function say(text, isError) {
    message.textContent = text;
    message.className = isError ? "field-error" : "";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var file = document.getElementById("import-file").files[0];
    if (!file) { say("Choose a file first.", true); return; }
    if (file.size > Number(form.dataset.maxUpload)) {
      say("The file is larger than the maximum of " + form.dataset.maxUpload + " bytes.", true);
      return;
    }
    var source = document.getElementById("import-source").value;
    var token = form.querySelector("input[name=_csrf_token]");
    var xhr = new XMLHttpRequest();
    xhr.open("PUT", "/sites/" + encodeURIComponent(domain) + "/imports/upload?source=" +
      encodeURIComponent(source) + "&name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    if (token) xhr.setRequestHeader("X-CSRFToken", token.value);
    bar.hidden = false;
    bar.value = 0;
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) bar.value = Math.round(100 * e.loaded / e.total);
    };
    xhr.onload = function () {
      var body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = {}; }
      if (xhr.status === 201) {
        say("Uploaded: import " + body.id + " is queued.", false);
        window.location.reload();
      } else {
        bar.hidden = true;
        say(body.detail || ("The upload failed (" + xhr.status + ")."), true);
      }
    };
    xhr.onerror = function () { bar.hidden = true; say("The upload was interrupted.", true); };
    say("Uploading " + file.name + "…", false);
    xhr.send(file);
  });

  function running() {
    return document.querySelectorAll("tr[data-status=pending], tr[data-status=importing]").length > 0;
  }

  function poll() {
    if (!running()) return;
    fetch("/sites/" + encodeURIComponent(domain) + "/imports/list", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (imports) {
        var finished = false;
        imports.forEach(function (i) {
          var row = document.querySelector("tr[data-import-id='" + i.id + "']");
          if (!row) return;
          if (row.dataset.status !== i.status && (i.status === "completed" || i.status === "failed")) finished = true;
          row.dataset.status = i.status;
          row.querySelector("progress").value = i.percent;
          row.querySelector(".import-progress").textContent = i.percent + " % · " + i.rows + " rows · " + i.days + " days";
          row.querySelector(".import-status").textContent = i.status;
        });
        if (finished) { window.location.reload(); return; }
        window.setTimeout(poll, 1500);
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  window.setTimeout(poll, 1000);

  // Export jobs: follow the bytes written until each is ready (or failed), then show its link.
  function building() {
    return document.querySelectorAll("tr[data-export-id][data-status=pending], tr[data-export-id][data-status=building]").length > 0;
  }

  function pollExports() {
    if (!building()) return;
    fetch("/sites/" + encodeURIComponent(domain) + "/imports/exports", { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (exports) {
        var finished = false;
        exports.forEach(function (e) {
          var row = document.querySelector("tr[data-export-id='" + e.id + "']");
          if (!row) return;
          if (row.dataset.status !== e.status && (e.status === "ready" || e.status === "failed")) finished = true;
          row.dataset.status = e.status;
          row.querySelector(".export-status").textContent = e.status;
          row.querySelector(".export-progress").textContent = (e.bytes_done / 1024).toFixed(1) + " KiB";
        });
        if (finished) { window.location.reload(); return; }
        window.setTimeout(pollExports, 2000);
      })
      .catch(function () { window.setTimeout(pollExports, 5000); });
  }
  window.setTimeout(pollExports, 1000);
})();
