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
      var now = s.lock ? "rolling " + esc(s.lock.version) + " (run <a href=\"/api/v1/runs/" + s.lock.run_id + "\">" + s.lock.run_id + "</a>): " + esc(s.lock.target_id || "") + " " + esc(s.lock.phase || "") : "idle";
      if (s.queued.length) now += "; queued: " + s.queued.join(", ");
      var targets = (s.targets || []).map(function (t) {
        return esc(t.id) + " <span class=\"state-" + esc(t.state) + "\">" + esc(t.state) + "</span>";
      }).join(", ");
      html += "<tr><td>" + esc(s.name) + "</td><td>" + esc(s.last_good_version || "none yet") + "</td><td>" + now + "</td><td>" + targets + "</td></tr>";
    });
    html += "</table><h2>Recent runs</h2><table id=\"runs\"><tr><th>run</th><th>service</th><th>version</th><th>status</th><th>created</th><th>targets</th><th>error</th></tr>";
    runs.forEach(function (r) {
      html += "<tr><td><a href=\"/api/v1/runs/" + r.id + "\">" + r.id + "</a></td><td>" + esc(r.service) + "</td><td>" + esc(r.version) +
        "</td><td class=\"status-" + esc(r.status) + "\">" + esc(r.status) + "</td><td>" + esc(r.created_at) + "</td><td>" +
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
