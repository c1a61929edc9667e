// Keeps the server-rendered page fresh. The server renders every part (one renderer): this
// script only swaps in what changed, tails a run's log, and shows times relative and local.
(function () {
  "use strict";
  var updated = document.getElementById("updated");
  var offline = document.getElementById("offline");
  var favicon = document.getElementById("favicon");

  // The tab's title and icon follow the state the server rendered (running, failed, idle).
  function reflect(element) {
    if (element.dataset.title) document.title = element.dataset.title;
    if (element.dataset.icon && favicon) favicon.setAttribute("href", "/favicon-" + element.dataset.icon + ".svg");
  }

  // Said plainly when the server cannot be reached, and taken away when it can again.
  function connected(yes) {
    if (offline) offline.hidden = yes;
    if (!yes) updated.textContent = "connection lost; reconnecting";
  }

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
    reflect(element);
    if (focused) { var again = element.querySelector('[href="' + focused + '"]'); if (again) again.focus(); }
    window.scrollTo(0, scroll);
  }

  // Fetches the server's rendering of a part and swaps it in.
  function refresh(url, element) {
    return fetch(url, { headers: { Accept: "text/html" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) { swap(element, html); connected(true); updated.textContent = "live, updated " + new Date().toLocaleTimeString(); })
      .catch(function () { connected(false); });
  }

  // One refresh at a time, at most every 250 ms however many events arrive.
  function debounced(url, element) {
    var pending = null, running = false, again = false;
    function go() {
      pending = null;
      if (running) { again = true; return; }
      running = true;
      refresh(url, element).then(function () {
        running = false;
        if (again) { again = false; schedule(); }
      });
    }
    function schedule() { if (!pending) pending = setTimeout(go, 250); }
    return schedule;
  }

  // The page follows GET /api/v1/events: each change the server tells of (runs, steps,
  // target states) refreshes the parts it touches; nothing is polled. EventSource reconnects
  // by itself, resuming after the last event it saw.
  function follow(onEvent) {
    var names = ["run.queued", "run.started", "run.target_done", "run.target_left_out", "run.succeeded", "run.failed",
                 "run.cancelled", "run.target_forgotten", "step.started", "step.succeeded", "step.failed", "target.state"];
    var source = new EventSource("/api/v1/events");
    names.forEach(function (name) {
      source.addEventListener(name, function (e) {
        var change = null;
        try { change = JSON.parse(e.data); } catch (ignored) { return; }
        onEvent(change);
      });
    });
    // Opened (or reopened): catch up on what happened before the stream began.
    source.addEventListener("open", function () { connected(true); onEvent(null); });
    source.addEventListener("error", function () { connected(false); });
    return source;
  }

  // A line tailed live goes where the server would have put it: in its target's group, folded
  // into the line before when it says the same (a poll), with its anchor.
  function append(log, line) {
    var parent = log;
    if (line.target_id) {
      parent = Array.from(log.querySelectorAll("details.log-group")).filter(function (d) { return d.dataset.target === line.target_id; })[0];
      if (!parent) {
        parent = document.createElement("details");
        parent.className = "log-group";
        parent.open = true;
        parent.dataset.target = line.target_id;
        var summary = document.createElement("summary");
        summary.textContent = line.target_id;
        parent.appendChild(summary);
        log.appendChild(parent);
      }
      var last = parent.lastElementChild;
      var text = last && last.querySelector && last.querySelector(".text");
      if (text && text.textContent === line.text && last.classList.contains(line.stream)) {
        var folded = last.querySelector(".folded");
        if (!folded) {
          folded = document.createElement("span");
          folded.className = "folded";
          folded.dataset.count = "1";
          last.appendChild(document.createTextNode(" "));
          last.appendChild(folded);
        }
        folded.dataset.count = String(Number(folded.dataset.count) + 1);
        var first = Date.parse(last.querySelector(".at").title);
        var seconds = (Date.parse(line.at) - first) / 1000;
        folded.textContent = "×" + folded.dataset.count + ", " + (seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)) + " s";
        return;
      }
    }
    var div = document.createElement("div");
    div.className = "line " + line.stream;
    div.id = "L" + line.seq;
    var at = document.createElement("a");
    at.className = "at";
    at.href = "#L" + line.seq;
    at.title = line.at;
    at.textContent = line.at.split("T")[1].replace("Z", "");
    var span = document.createElement("span");
    span.className = "text";
    span.textContent = line.text;
    div.appendChild(at);
    div.appendChild(document.createTextNode(" "));
    div.appendChild(span);
    parent.appendChild(div);
  }

  times(document);
  setInterval(function () { times(document); }, 10000);

  var state = document.getElementById("state");
  if (state) {
    var refreshState = debounced("/?part=state", state);
    follow(function () { refreshState(); });
  }

  var run = document.getElementById("run");
  var log = document.getElementById("log");
  if (run && log) {
    var id = Number(run.dataset.run);
    var refreshRun = debounced("/runs/" + id + "?part=run", run);
    follow(function (change) { if (!change || change.run_id === id) refreshRun(); });
    if (run.dataset.status === "queued" || run.dataset.status === "running") {
      var source = new EventSource("/api/v1/runs/" + id + "/logs?after=" + (log.dataset.after || 0));
      source.addEventListener("line", function (e) {
        var line = JSON.parse(e.data);
        var atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 4;
        append(log, line);
        if (atBottom) window.scrollTo(0, document.body.scrollHeight);
      });
      source.addEventListener("end", function () { source.close(); });
    }
  }
})();
