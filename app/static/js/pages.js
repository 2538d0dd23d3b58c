// Small enhancements of the server-rendered pages; every page works without them.
"use strict";

(function () {
  // Navigation: a "Menu" button folds the header's links away on narrow screens.
  const toggle = document.querySelector(".menu-toggle");
  const menu = document.getElementById("site-menu");
  if (toggle && menu) {
    toggle.hidden = false;
    document.documentElement.classList.add("has-menu-toggle");
    toggle.addEventListener("click", () => {
      const open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", String(open));
      menu.classList.toggle("open", open);
    });
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        toggle.setAttribute("aria-expanded", "false");
        menu.classList.remove("open");
        toggle.focus();
      }
    });
  }

  // Copy buttons: copy the text of the element named by data-copy, and say so.
  for (const button of document.querySelectorAll("button.copy[data-copy]")) {
    const source = document.getElementById(button.dataset.copy);
    if (!source || !navigator.clipboard) continue;
    button.hidden = false;
    const label = button.textContent;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(source.textContent.trim());
        button.textContent = "Copied";
      } catch (error) {
        button.textContent = "Select and copy by hand";
      }
      setTimeout(() => { button.textContent = label; }, 2000);
    });
  }

  // Form fields: the browser's constraint message is also shown next to the field, like the server's.
  for (const input of document.querySelectorAll(".field input, .field select")) {
    const error = document.getElementById(input.id + "-error");
    if (!error) continue;
    input.addEventListener("invalid", () => {
      error.textContent = input.validationMessage;
      error.hidden = false;
      input.setAttribute("aria-invalid", "true");
      input.closest(".field").classList.add("has-error");
    });
    input.addEventListener("input", () => {
      if (input.getAttribute("aria-invalid") === "true" && input.checkValidity()) {
        error.hidden = true;
        input.removeAttribute("aria-invalid");
        input.closest(".field").classList.remove("has-error");
      }
    });
  }
  const summary = document.querySelector(".error-summary");
  if (summary) summary.focus();

  // The setup page: ask whether the first event has arrived until it has.
  const status = document.getElementById("first-event");
  if (status && status.dataset.received !== "true") {
    const text = document.getElementById("first-event-text");
    const dashboard = document.getElementById("to-dashboard");
    const again = document.getElementById("check-again");
    let delay = 2000;
    const check = async () => {
      try {
        const answer = await fetch(status.dataset.statusUrl, {headers: {Accept: "application/json"},
                                                              credentials: "same-origin", cache: "no-store"});
        if (answer.ok && (await answer.json()).received) {
          status.dataset.received = "true";
          status.classList.replace("is-waiting", "is-ok");
          text.textContent = "The first event has arrived. Beacon is counting " + status.dataset.domain + ".";
          dashboard.hidden = false;
          again.hidden = true;
          return;
        }
        if (answer.status >= 400 && answer.status < 500) return;  // signed out or no access: "Check again" is left
        delay = 2000;
      } catch (error) {
        delay = Math.min(delay * 2, 30000);  // offline or restarting: back off, keep trying
      }
      setTimeout(check, document.hidden ? Math.max(delay, 10000) : delay);
    };
    setTimeout(check, delay);
  }
})();
