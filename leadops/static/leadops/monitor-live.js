/* Live updates of the admin monitor pages over WebSocket /ws/monitor/ (no framework, no CDN).
 *
 * The page marks what may change with data attributes: [data-metric] counters on the overview,
 * [data-worker] rows with [data-heartbeat-at] on the workers page. Counters move by the deltas the
 * events carry; a worker turns offline when its heartbeat is overdue (client timer) or when a
 * worker.offline event arrives. The overview also re-reads every counter from its snapshot URL
 * after a reconnect (events sent while the socket was down are not all replayed). Staff actions
 * (enqueue, cancel, requeue, purge) publish jobs.moved events, so the counters follow them live.
 * "succeeded, last minute" starts from the jobs the server saw finish in the last minute and counts
 * them out as they age; the "Last hour" chart (monitor-chart.js) and the fleet grid move by events too.
 */
(function () {
  "use strict";
  var root = document.querySelector("[data-live-monitor]");
  if (!root || !window.WebSocket) { return; }
  var overdueMs = (parseInt(root.getAttribute("data-overdue-s"), 10) || 120) * 1000;
  // Browser clock minus server clock, so "overdue" does not depend on the viewer's clock.
  var skewMs = Date.now() - (Date.parse(root.getAttribute("data-server-now")) || Date.now());
  var statusEl = document.getElementById("lo-live-status");
  var lastId = 0;
  var reconnecting = false;
  // When each job that succeeded in the last minute finished, on this browser's clock.
  var finished = [];

  function seedFinished(serverTimes) {
    finished = (serverTimes || []).map(function (ms) { return ms + skewMs; }).sort(function (a, b) { return a - b; });
  }
  var recent = document.getElementById("lo-recent-succeeded");
  if (recent) { seedFinished(JSON.parse(recent.textContent)); }

  function setStatus(text, level) {
    if (!statusEl) { return; }
    statusEl.textContent = text;
    statusEl.className = "lo-badge " + level;
  }

  function el(name) {
    return document.querySelector('[data-metric="' + (window.CSS && CSS.escape ? CSS.escape(name) : name) + '"]');
  }

  function bump(name, delta) {
    var node = el(name);
    if (!node || !delta) { return; }
    var value = parseInt(node.textContent, 10) || 0;
    node.textContent = String(Math.max(0, value + delta));
    node.classList.remove("lo-flash");
    void node.offsetWidth;
    node.classList.add("lo-flash");
  }

  function move(provider, from, to, count) {
    var n = count || 1;
    if (from) { bump("queue." + from, -n); bump("provider." + provider + "." + from, -n); }
    if (to) { bump("queue." + to, n); bump("provider." + provider + "." + to, n); }
    if (from === "dead") { bump("dlq_size", -n); }
    if (to === "dead") { bump("dlq_size", n); }
  }

  function throughput() {
    var node = el("succeeded_last_minute");
    var cutoff = Date.now() - 60000;
    while (finished.length && finished[0] < cutoff) { finished.shift(); }
    if (node) { node.textContent = String(finished.length); }
  }

  function workerRow(id) {
    return document.querySelector('tr[data-worker="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
  }

  function markWorker(row, online) {
    var cell = row.querySelector("[data-worker-status]");
    if (!cell || row.getAttribute("data-enabled") !== "true") { return; }
    cell.setAttribute("data-worker-status", online ? "online" : "offline");
    cell.innerHTML = online ? '<span class="lo-online">online</span>' : '<span class="lo-offline">offline</span>';
  }

  function refreshWorkers() {
    var rows = document.querySelectorAll("tr[data-worker]");
    var online = 0;
    var now = Date.now() - skewMs;
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var at = Date.parse(row.getAttribute("data-heartbeat-at") || "");
      var age = isNaN(at) ? null : now - at;
      var ageCell = row.querySelector("[data-heartbeat-age]");
      if (ageCell && age !== null) { ageCell.textContent = Math.max(0, Math.round(age / 1000)) + " s ago"; }
      var cell = row.querySelector("[data-worker-status]");
      if (age === null || age > overdueMs) {
        markWorker(row, false);
      } else if (row.getAttribute("data-offline-event") !== "true") {
        markWorker(row, true);
      }
      if (cell && cell.getAttribute("data-worker-status") === "online") { online++; }
    }
    var counter = el("workers_online");
    if (counter) { counter.textContent = String(online); }
  }

  function chart(outcome) { if (window.LeadOpsChart) { window.LeadOpsChart.bump(outcome); } }

  // The fleet grid: a cell per worker, its class its state (busy, idle, overdue, never, breaker, disabled).
  function fleetCell(id) {
    return document.querySelector('[data-fleet-worker="' + (window.CSS && CSS.escape ? CSS.escape(id) : id) + '"]');
  }

  function fleetSet(cell, state) {
    var held = cell.getAttribute("data-state");
    if (held === "disabled" || held === "breaker" || held === state) { return; }
    cell.setAttribute("data-state", state);
    cell.className = "lo-cell lo-" + state;
    cell.title = cell.getAttribute("data-fleet-worker") + ": " + state;
  }

  function refreshFleet() {
    var cells = document.querySelectorAll("[data-fleet-worker]");
    if (!cells.length) { return; }
    var now = Date.now() - skewMs;
    var counts = {};
    for (var i = 0; i < cells.length; i++) {
      var at = Date.parse(cells[i].getAttribute("data-heartbeat-at") || "");
      var state = cells[i].getAttribute("data-state");
      if ((state === "busy" || state === "idle") && !isNaN(at) && now - at > overdueMs) { fleetSet(cells[i], "overdue"); }
      state = cells[i].getAttribute("data-state");
      counts[state] = (counts[state] || 0) + 1;
    }
    var shown = document.querySelectorAll("[data-fleet-count]");
    for (var j = 0; j < shown.length; j++) {
      shown[j].textContent = String(counts[shown[j].getAttribute("data-fleet-count")] || 0);
    }
  }

  function heartbeat(event) {
    var cell = fleetCell(event.data.worker_id);
    if (cell) {
      cell.setAttribute("data-heartbeat-at", event.at);
      fleetSet(cell, event.data.running_jobs ? "busy" : "idle");
    }
    var row = workerRow(event.data.worker_id);
    if (!row) { return; }
    row.setAttribute("data-heartbeat-at", event.at);
    row.removeAttribute("data-offline-event");
    var version = row.querySelector("[data-worker-version]");
    if (version) { version.textContent = event.data.version || "-"; }
  }

  // The number of firing alerts: red while any fires (alert.firing / alert.resolved move it).
  function alertBadge() {
    var node = el("alerts.firing");
    if (node) { node.className = "lo-badge " + ((parseInt(node.textContent, 10) || 0) > 0 ? "alert" : "ok"); }
  }

  var snapshotUrl = root.getAttribute("data-snapshot-url");

  function resync() {
    if (!snapshotUrl || !window.fetch) { return Promise.resolve(); }
    return fetch(snapshotUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (snapshot) {
        if (!snapshot) { return; }
        Object.keys(snapshot.metrics).forEach(function (name) {
          var node = el(name);
          if (node && name !== "dup_ratio_24h") { node.textContent = String(snapshot.metrics[name]); }
        });
        var badge = el("dup_ratio_24h");
        if (badge && snapshot.dup_ratio_24h) {
          badge.textContent = snapshot.dup_ratio_24h.text;
          badge.className = "lo-badge " + snapshot.dup_ratio_24h.level;
        }
        alertBadge();
        if (snapshot.recent_succeeded_ms) { seedFinished(snapshot.recent_succeeded_ms); throughput(); }
        if (window.LeadOpsChart && snapshot.throughput) { window.LeadOpsChart.load(snapshot.throughput); }
        root.setAttribute("data-resynced-at", snapshot.at);
      })
      .catch(function () { /* the next period tries again */ });
  }
  window.LeadOpsMonitor = { resync: resync };

  var handlers = {
    "job.claimed": function (e) { move(e.data.provider, "queued", "leased"); },
    "job.succeeded": function (e) {
      move(e.data.provider, "leased", "succeeded");
      bump("succeeded_last_hour", 1);
      finished.push(Date.now());
      throughput();
      chart("succeeded");
    },
    "job.failed": function (e) { move(e.data.provider, "leased", "queued"); chart("failed"); },
    "job.dead": function (e) { move(e.data.provider, "leased", "dead"); chart("dead"); },
    "jobs.moved": function (e) { move(e.data.provider, e.data.from_state, e.data.to_state, e.data.count); },
    "leads.ingested": function (e) {
      bump("today.added", e.data.added);
      bump("today.duplicates", e.data.duplicates);
      bump("today.invalid", e.data.invalid);
    },
    "alert.firing": function () { bump("alerts.firing", 1); alertBadge(); },
    "alert.resolved": function () { bump("alerts.firing", -1); alertBadge(); },
    "worker.heartbeat.batch": function (m) { m.events.forEach(heartbeat); refreshWorkers(); refreshFleet(); },
    "worker.online": function (e) {
      var row = workerRow(e.data.worker_id);
      if (row) { row.setAttribute("data-heartbeat-at", e.at); row.removeAttribute("data-offline-event"); }
      refreshWorkers();
    },
    "worker.offline": function (e) {
      var cell = fleetCell(e.data.worker_id);
      if (cell) { fleetSet(cell, "overdue"); refreshFleet(); }
      var row = workerRow(e.data.worker_id);
      if (row) { row.setAttribute("data-offline-event", "true"); markWorker(row, false); }
      refreshWorkers();
    }
  };

  function connect() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var url = scheme + "//" + location.host + "/ws/monitor/" + (lastId ? "?last_event_id=" + lastId : "");
    var socket = new WebSocket(url);
    socket.onopen = function () {
      setStatus("live", "ok");
      root.setAttribute("data-live-ready", "true");
      if (reconnecting) { resync(); }
      reconnecting = false;
    };
    socket.onmessage = function (message) {
      var event = JSON.parse(message.data);
      if (event.id && event.id > lastId) { lastId = event.id; }
      var handle = handlers[event.type];
      if (handle) { handle(event); }
    };
    socket.onclose = function (closed) {
      root.removeAttribute("data-live-ready");
      if (closed.code === 4401 || closed.code === 4403) { setStatus("not allowed", "alert"); return; }
      setStatus("reconnecting", "warn");
      reconnecting = true;
      setTimeout(connect, 2000);
    };
  }

  setStatus("connecting", "none");
  connect();
  if (document.querySelector("tr[data-worker]")) { refreshWorkers(); setInterval(refreshWorkers, 2000); }
  setInterval(throughput, 5000);
  throughput();
  if (document.querySelector("[data-fleet-worker]")) { setInterval(refreshFleet, 5000); }
  // Every 30 s the counters, the chart (its claim waits come only from the server) and the last minute.
  if (snapshotUrl) { setInterval(resync, 30000); }
})();
