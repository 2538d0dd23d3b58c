// Live dashboard updates over the realtime WebSocket: counts new pageviews, lists recent events, and
// reconnects by itself with backoff.
(function () {
  "use strict";
  var holder = document.getElementById("live");
  if (!holder) return;
  var counter = document.getElementById("pageviews");
  var status = document.getElementById("live-status");
  var feed = document.getElementById("live-feed");
  var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + holder.dataset.wsUrl;
  var delay = 500;

  function onEvent(msg) {
    if (msg.name === "pageview" && counter && counter.dataset.count !== undefined) {
      counter.dataset.count = String(Number(counter.dataset.count) + 1);
      counter.textContent = counter.dataset.count;
    }
    if (feed) {
      var item = document.createElement("li");
      item.textContent = msg.name + " " + msg.pathname;
      feed.insertBefore(item, feed.firstChild);
      while (feed.children.length > 20) feed.removeChild(feed.lastChild);
    }
  }

  function connect() {
    var socket = new WebSocket(url);
    socket.onopen = function () { delay = 500; status.textContent = "connected"; };
    socket.onmessage = function (e) {
      var msg;
      try { msg = JSON.parse(e.data); } catch (err) { return; }
      if (msg.type === "ping") { socket.send('{"type":"pong"}'); return; }
      if (msg.type === "event") onEvent(msg);
    };
    socket.onclose = function () {
      status.textContent = "reconnecting…";
      setTimeout(connect, delay);
      delay = Math.min(delay * 2, 15000);
    };
  }
  connect();
})();
