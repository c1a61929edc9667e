// Keeps the server-rendered state fresh: re-reads the JSON API every 2 s and redraws.
(function () {
  "use strict";
  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function lastPhases(steps) {
    var byTarget = {};
    steps.forEach(function (s) { byTarget[s.target_id] = s.phase + (s.status === "running" ? "…" : s.status === "failed" ? " ✗" : ""); });
    return Object.keys(byTarget).sort().map(function (t) { return esc(t) + ": " + esc(byTarget[t]); }).join("; ");
  }
  function render(services, runs) {
    var html = "<h2>Services</h2><table id=\"services\"><tr><th>service</th><th>last good version</th><th>now</th><th>targets</th></tr>";
    services.forEach(function (s) {
      var r = s.running;
      var now = r ? "rolling " + esc(r.version) + " (run <a href=\"/api/v1/runs/" + r.run_id + "\">" + r.run_id + "</a>): " + esc(r.target_id || "") + " " + esc(r.phase || "") : "idle";
      if (s.lock) now = "locked by " + esc(s.lock.locked_by) + ": " + esc(s.lock.reason) + "; " + now;
      if (s.queued.length) now += "; queued: " + s.queued.join(", ");
      var targets = (s.targets || []).map(function (t) {
        var text = esc(t.id) + " <span class=\"state-" + esc(t.state) + "\">" + esc(t.state) + "</span>";
        if (t.state === "left_out" && t.left_out) text += " <span class=\"left-out-reason\">(" + esc(t.left_out.reason) + ")</span>";
        return text;
      }).join(", ");
      html += "<tr><td>" + esc(s.name) + "</td><td>" + esc(s.last_good_version || "none yet") + "</td><td>" + now + "</td><td>" + targets + "</td></tr>";
    });
    html += "</table><h2>Recent runs</h2><table id=\"runs\"><tr><th>run</th><th>service</th><th>version</th><th>status</th><th>created</th><th>asked by</th><th>reason</th><th>targets</th><th>error</th></tr>";
    runs.forEach(function (r) {
      html += "<tr><td><a href=\"/api/v1/runs/" + r.id + "\">" + r.id + "</a></td><td>" + esc(r.service) + "</td><td>" + esc(r.version) +
        "</td><td class=\"status-" + esc(r.status) + "\">" + esc(r.status) + "</td><td>" + esc(r.created_at) + "</td><td>" +
        esc(r.requested_by) + "</td><td>" + esc(r.reason) + "</td><td>" +
        lastPhases(r.steps) + "</td><td>" + esc(r.error) + "</td></tr>";
    });
    html += "</table>";
    document.getElementById("state").innerHTML = html;
    document.getElementById("updated").textContent = "live, updated " + new Date().toLocaleTimeString();
  }
  function refresh() {
    Promise.all([
      fetch("/api/v1/services").then(function (r) { return r.json(); }),
      fetch("/api/v1/runs?limit=20").then(function (r) { return r.json(); })
    ]).then(function (answers) { render(answers[0].services, answers[1].runs); })
      .catch(function () { document.getElementById("updated").textContent = "cannot reach the server; retrying"; })
      .then(function () { setTimeout(refresh, 2000); });
  }
  refresh();
})();
