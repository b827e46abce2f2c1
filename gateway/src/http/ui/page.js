"use strict";
// Renders the /status document into <main id="content"> as ui.rs does on the server (keep the
// two in step), first from the document the page came with, then from /status every 2 s.
(function () {
  var UNKNOWN = "\u2014";
  var PERIOD_MS = 2000;

  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function isNum(v) { return typeof v === "number" && isFinite(v) && v >= 0 && Math.floor(v) === v; }
  function num(v) { return isNum(v) ? String(v) : UNKNOWN; }
  function text(v) { return typeof v === "string" ? esc(v) : UNKNOWN; }
  function obj(v) { return v !== null && typeof v === "object" ? v : {}; }
  function bytes(v) {
    if (!isNum(v)) return UNKNOWN;
    if (v < 1024) return v + " B";
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    var value = v / 1024, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return value.toFixed(1) + " " + units[unit];
  }
  function time(ms) { return new Date(ms).toISOString(); }
  function dtDd(label, id, html) { return "<dt>" + label + "</dt><dd id=\"" + id + "\">" + html + "</dd>"; }
  function roleBadge(role) {
    var cls = role === "leader" ? "badge leader"
      : (role === "candidate" || role === "pre-candidate" || role === "unknown") ? "badge warn" : "badge";
    return "<span class=\"" + cls + "\">" + esc(role) + "</span>";
  }
  function errorSpan(e) { return "<span class=\"error\">" + esc(e) + "</span>"; }
  function percent(f) {
    if (typeof f !== "number" || !isFinite(f)) return 0;
    return Math.floor(Math.min(Math.max(f, 0), 1) * 100);
  }
  function bar(f) {
    var p = percent(f);
    return "<progress id=\"progress-bar\" max=\"100\" value=\"" + p + "\">" + p + "%</progress>" +
      "<p id=\"progress-percent\">" + p + "%</p>";
  }

  function nodeCard(doc) {
    var raft = obj(doc.raft);
    var role = typeof raft.role === "string" ? raft.role : "unknown";
    var leader = isNum(raft.leader) ? raft.leader : 0;
    return "<div class=\"card\"><h2>This node</h2><dl>" +
      dtDd("Node", "node", num(doc.node)) +
      dtDd("Role", "role", roleBadge(role)) +
      dtDd("Leader", "leader", leader === 0 ? "none known" : "node " + leader) +
      dtDd("Term", "term", num(raft.term)) +
      dtDd("Member", "member", raft.member === true ? "yes" : "no: not in the configuration") +
      "</dl></div>";
  }
  function positionCard(doc) {
    var raft = obj(doc.raft), a = obj(doc.applier);
    return "<div class=\"card\"><h2>Log position</h2><dl>" +
      dtDd("Committed", "commit", num(raft.commit)) +
      dtDd("Applied", "applied", num(a.applied)) +
      dtDd("Apply lag", "apply-lag", num(doc.apply_lag)) +
      dtDd("Last index", "last-index", num(raft.last_index)) +
      dtDd("Waiting requests", "pending", num(doc.pending_requests)) +
      "</dl></div>";
  }
  function influxdCard(doc) {
    var a = obj(doc.applier);
    var h = "<div class=\"card\"><h2>influxd</h2><dl>" +
      dtDd("State", "influxd", a.influxd_up === true
        ? "<span class=\"badge ok\">up</span>" : "<span class=\"badge bad\">down</span>");
    if (typeof a.influxd_error === "string") h += dtDd("Error", "influxd-error", errorSpan(a.influxd_error));
    h += dtDd("Version", "influxd-version", text(a.influxd_version)) +
      dtDd("Marker", "marker", num(a.marker)) +
      dtDd("Seeds", "seeds", num(a.seeds_started) + " started, " + num(a.seeds_completed) +
        " completed, " + num(a.seeds_failed) + " failed");
    if (typeof a.last_seed_error === "string") h += dtDd("Last seed error", "seed-error", errorSpan(a.last_seed_error));
    return h + "</dl></div>";
  }
  function logCard(doc) {
    var l = obj(doc.log);
    return "<div class=\"card\"><h2>Raft log</h2><dl>" +
      dtDd("First index", "log-first-index", num(l.first_index)) +
      dtDd("Entries on disk", "log-disk-entries", num(l.disk_entries)) +
      dtDd("Size on disk", "log-disk-bytes", bytes(l.disk_bytes)) +
      dtDd("Directory", "log-dir-bytes", bytes(l.dir_bytes)) +
      dtDd("Trimmed", "log-trimmed", num(l.trimmed_entries) + " entries, " + bytes(l.trimmed_bytes)) +
      dtDd("In memory", "log-memory", num(l.memory_entries) + " entries, " + bytes(l.memory_bytes) +
        " of " + bytes(l.memory_budget)) +
      dtDd("Path", "log-path", text(l.path)) +
      "</dl></div>";
  }
  function progressSection(doc) {
    var seed = doc.seed, rebuild = doc.rebuild, h;
    if (seed !== null && typeof seed === "object") {
      h = "<section id=\"progress\" class=\"wide active\"><h2>Seed in progress</h2>" + bar(seed.progress) + "<dl>" +
        dtDd("Phase", "progress-phase", text(seed.phase)) +
        dtDd("Reason", "seed-reason", text(seed.reason)) +
        dtDd("Source", "seed-source", text(seed.source)) +
        dtDd("Must cover index", "seed-need", num(seed.need));
      var total = isNum(seed.bytes_total) ? seed.bytes_total : 0;
      h += dtDd("Copied", "seed-copied", total === 0
        ? bytes(seed.bytes_copied) + " of a size not known yet"
        : bytes(seed.bytes_copied) + " of " + bytes(seed.bytes_total));
      var elapsed = typeof seed.elapsed_seconds === "number" ? Math.floor(seed.elapsed_seconds) : 0;
      h += dtDd("Elapsed", "seed-elapsed", elapsed + " s");
      if (typeof seed.last_error === "string") h += dtDd("Last error", "seed-last-error", errorSpan(seed.last_error));
      return h + "</dl></section>";
    }
    if (rebuild !== null && typeof rebuild === "object") {
      return "<section id=\"progress\" class=\"wide active\"><h2>Rebuild in progress</h2>" + bar(rebuild.progress) + "<dl>" +
        dtDd("Phase", "progress-phase", "replaying the log into influxd") +
        dtDd("Entries", "rebuild-span", "from " + num(rebuild.from) + " to " + num(rebuild.target) +
          ", applied " + num(rebuild.applied)) +
        "</dl></section>";
    }
    return "<section id=\"progress\" class=\"wide\"><h2>Rebuild or seed</h2>" +
      "<p class=\"muted\">None in progress.</p></section>";
  }
  function memberRole(id, kind, me, myRole, leader) {
    if (id === leader) return "leader";
    if (id === me) return myRole;
    if (kind === "learner") return "learner";
    return leader !== 0 ? "follower" : "unknown";
  }
  function membersSection(doc) {
    var raft = obj(doc.raft);
    var me = isNum(doc.node) ? doc.node : 0;
    var leader = isNum(raft.leader) ? raft.leader : 0;
    var myRole = typeof raft.role === "string" ? raft.role : "unknown";
    var commit = isNum(raft.commit) ? raft.commit : 0;
    var members = Array.isArray(raft.members) ? raft.members : [];
    var h = "<section class=\"wide\" id=\"members\"><h2>Members</h2><table><thead><tr>" +
      "<th>Id</th><th>Peer address</th><th>Kind</th><th>Role</th><th>Matched</th>" +
      "<th>Applied (influxd marker)</th><th>Behind commit</th></tr></thead><tbody>";
    members.forEach(function (m) {
      m = obj(m);
      var id = isNum(m.id) ? m.id : 0;
      var kind = typeof m.kind === "string" ? m.kind : "voter";
      var tags = roleBadge(memberRole(id, kind, me, myRole, leader));
      if (id === me) tags += " <span class=\"badge\">this node</span>";
      var behind = isNum(m.applied) ? String(Math.max(commit - m.applied, 0)) : UNKNOWN;
      h += "<tr data-member=\"" + id + "\"" + (id === me ? " class=\"self\"" : "") + ">" +
        "<td class=\"m-id\">" + id + "</td><td class=\"m-addr\">" + text(m.peer_addr) + "</td>" +
        "<td class=\"m-kind\">" + esc(kind) + "</td><td class=\"m-role\">" + tags + "</td>" +
        "<td class=\"m-matched\">" + num(m.matched) + "</td><td class=\"m-applied\">" + num(m.applied) + "</td>" +
        "<td class=\"m-behind\">" + behind + "</td></tr>";
    });
    h += "</tbody></table>";
    if (myRole !== "leader") {
      h += "<p class=\"muted\" id=\"leader-note\">Each member's replication progress (Matched) is known to the " +
        "leader only, and what a follower knows of the others comes from the leader: ";
      if (leader === 0) {
        h += "no leader is known now; see the leader's page once there is one.";
      } else {
        var addr = UNKNOWN;
        members.forEach(function (m) { if (obj(m).id === leader) addr = text(m.peer_addr); });
        h += "see the leader's page (node " + leader + ", peer address " + addr +
          "; this node does not know its API address).";
      }
      h += "</p>";
    }
    return h + "</section>";
  }
  function leaderChangesSection(doc) {
    var changes = Array.isArray(obj(doc.raft).leader_changes) ? doc.raft.leader_changes : [];
    var h = "<section class=\"wide\" id=\"leader-changes\"><h2>Leader changes seen by this node</h2>";
    if (changes.length === 0) return h + "<p class=\"muted\">None since this node started.</p></section>";
    h += "<table><thead><tr><th>When (UTC)</th><th>Term</th><th>New leader</th></tr></thead><tbody>";
    changes.slice().reverse().forEach(function (c) {
      c = obj(c);
      var when = isNum(c.at_ms) ? time(c.at_ms) : UNKNOWN;
      var leader = isNum(c.leader) && c.leader !== 0 ? "node " + c.leader : "none (leader lost)";
      h += "<tr><td>" + esc(when) + "</td><td>" + num(c.term) + "</td><td>" + leader + "</td></tr>";
    });
    return h + "</tbody></table></section>";
  }
  function content(doc) {
    return "<section class=\"cards\">" + nodeCard(doc) + positionCard(doc) + influxdCard(doc) + logCard(doc) +
      "</section>" + progressSection(doc) + membersSection(doc) + leaderChangesSection(doc);
  }

  var refreshes = 0;
  function show(doc) {
    document.getElementById("content").innerHTML = content(doc);
    var raft = obj(doc.raft);
    document.title = "node " + num(doc.node) + " (" + (typeof raft.role === "string" ? raft.role : "unknown") +
      "): influx-raft-gateway";
    document.body.setAttribute("data-rendered-by", "script");
  }
  function say(html) { document.getElementById("refresh").innerHTML = html; }

  function refresh() {
    fetch("status", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (!r.ok) throw new Error("/status answered " + r.status);
        return r.json();
      })
      .then(function (doc) {
        show(doc);
        refreshes++;
        document.body.setAttribute("data-refreshes", String(refreshes));
        say("Refreshed from /status at " + esc(time(Date.now())) + ", every 2 s.");
      })
      .catch(function (e) {
        // Keep the last figures on screen, and say how old they are.
        say("<span class=\"error\">Refresh failed at " + esc(time(Date.now())) + ": " + esc(e.message) +
          ".</span> The figures below are from the last successful refresh.");
      });
  }

  try {
    show(JSON.parse(document.getElementById("initial").textContent));
  } catch (e) {
    say("<span class=\"error\">Cannot read the page's data: " + esc(e.message) + "</span>");
  }
  refresh();
  setInterval(refresh, PERIOD_MS);
})();
