// Keeps the server-rendered page fresh. The server renders every part (one renderer): this
// script only swaps in what changed, tails a run's log, and shows times relative and local.
(function () {
  "use strict";
  var updated = document.getElementById("updated");

  function relative(iso) {
    var seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
    if (isNaN(seconds)) return iso;
    if (seconds < 5) return "just now";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.round(seconds / 3600) + " h ago";
    return new Date(iso).toLocaleString();
  }

  function times(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      t.textContent = relative(t.getAttribute("datetime"));
      t.title = new Date(t.getAttribute("datetime")).toLocaleString() + " (" + t.getAttribute("datetime") + ")";
    });
  }

  // Replaces an element's content only when the server's rendering changed, keeping the
  // focused element and the scroll position.
  function swap(element, html) {
    if (element.dataset.html === html) { times(element); return; }
    var focused = document.activeElement && document.activeElement.getAttribute("href");
    var scroll = window.scrollY;
    element.dataset.html = html;
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.firstElementChild;
    element.innerHTML = fresh ? fresh.innerHTML : "";
    if (fresh) Object.keys(fresh.dataset).forEach(function (k) { element.dataset[k] = fresh.dataset[k]; });
    times(element);
    if (focused) { var again = element.querySelector('[href="' + focused + '"]'); if (again) again.focus(); }
    window.scrollTo(0, scroll);
  }

  function poll(url, element) {
    fetch(url, { headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { swap(element, html); updated.textContent = "live, updated " + new Date().toLocaleTimeString(); })
      .catch(function () { updated.textContent = "cannot reach the server; retrying"; })
      .then(function () { setTimeout(function () { poll(url, element); }, 2000); });
  }

  times(document);
  var state = document.getElementById("state");
  if (state) poll("/?part=state", state);

  var run = document.getElementById("run");
  var log = document.getElementById("log");
  if (run && log) {
    poll("/runs/" + run.dataset.run + "?part=run", run);
    if (run.dataset.status === "queued" || run.dataset.status === "running") {
      var source = new EventSource("/api/v1/runs/" + run.dataset.run + "/logs?after=" + (log.dataset.after || 0));
      source.addEventListener("line", function (e) {
        var line = JSON.parse(e.data);
        var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
        log.appendChild(document.createTextNode(line.at + " " + (line.target_id ? "[" + line.target_id + "] " : "") + line.text + "\n"));
        if (atBottom) window.scrollTo(0, document.body.scrollHeight);
      });
      source.addEventListener("end", function () { source.close(); });
    }
  }
})();
