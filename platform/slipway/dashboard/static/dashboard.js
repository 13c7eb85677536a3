// Slipway dashboard: the live parts (build log, app logs) over server-sent events.
// Every page works without this file; it only keeps the logs moving without reloading.
"use strict";

(function () {
  const MAX_LOG_CHARS = 400000; // keep the page light when a log runs long

  function append(pre, text) {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
    pre.textContent += (pre.textContent && !pre.textContent.endsWith("\n") ? "\n" : "") + text + "\n";
    if (pre.textContent.length > MAX_LOG_CHARS) {
      pre.textContent = pre.textContent.slice(-MAX_LOG_CHARS);
    }
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  }

  function setBadge(holder, state) {
    if (!holder) return;
    const badge = holder.querySelector(".badge");
    if (!badge) return;
    badge.textContent = state;
    badge.dataset.state = state;
    badge.className = "badge " + ({ succeeded: "ok", failed: "bad" }[state] || "warn");
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text;
  }

  function followDeploy(pre) {
    const source = new EventSource(pre.dataset.stream);
    const live = document.getElementById("log-live");
    pre.scrollTop = pre.scrollHeight;
    source.addEventListener("open", function () {
      if (live) live.hidden = false;
      setText("log-status", "Following the build log live.");
    });
    source.addEventListener("log", function (event) { append(pre, event.data); });
    source.addEventListener("state", function (event) {
      setBadge(document.getElementById("deploy-state"), event.data);
    });
    source.addEventListener("end", function (event) {
      source.close();
      if (live) live.hidden = true;
      setBadge(document.getElementById("deploy-state"), event.data);
      setText("log-status", "The deploy is over: " + event.data + ".");
      if (event.data === "succeeded") {
        const done = document.getElementById("deploy-done");
        if (done) done.hidden = false;
      } else {
        // Reload once to show the error message the server recorded.
        window.setTimeout(function () { window.location.reload(); }, 500);
      }
    });
    source.addEventListener("error", function () {
      setText("log-status", "Connection lost; reconnecting…");
    });
  }

  function followAppLog(pre, button) {
    const source = new EventSource(pre.dataset.stream);
    const live = document.getElementById("logs-live");
    button.hidden = true;
    source.addEventListener("open", function () {
      // Every (re)connection starts with the same tail the page shows: paint it afresh.
      pre.textContent = "";
      if (live) live.hidden = false;
      setText("logs-status", "Following the logs live.");
    });
    source.addEventListener("log", function (event) { append(pre, event.data); });
    source.addEventListener("error", function () {
      if (live) live.hidden = true;
      setText("logs-status", "Connection lost; reconnecting…");
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    const buildLog = document.getElementById("build-log");
    if (buildLog && buildLog.dataset.stream && window.EventSource) followDeploy(buildLog);
    const appLog = document.getElementById("app-log");
    const follow = document.getElementById("follow-logs");
    if (appLog) appLog.scrollTop = appLog.scrollHeight;
    if (appLog && follow && appLog.dataset.stream && window.EventSource) {
      // Following holds a connection open, so it starts when asked, not on every page view.
      follow.hidden = false;
      follow.addEventListener("click", function () { followAppLog(appLog, follow); });
    }
  });
})();
