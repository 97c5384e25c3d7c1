// Live view page: MJPEG <img> plus /status polled once a second; the plot is inline SVG (no CDN).
"use strict";
(function () {
  var qs = /[?&]token=/.test(location.search) ? location.search : "";
  var $ = function (id) { return document.getElementById(id); };
  var img = $("video");
  var polls = 0;

  function startStream() { img.src = "stream" + qs + (qs ? "&" : "?") + "t=" + Date.now(); }
  img.addEventListener("error", function () { setTimeout(startStream, 2000); });  // server restarted
  startStream();

  function fmt(x, digits) {
    if (x === null || x === undefined) return "–";
    return typeof x === "number" ? x.toFixed(digits === undefined ? 2 : digits) : String(x);
  }
  function age(s) {
    if (s === null || s === undefined) return "–";
    if (s < 120) return s.toFixed(0) + " s";
    if (s < 7200) return (s / 60).toFixed(1) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function set(id, text) { var el = $(id); if (el.textContent !== text) el.textContent = text; }

  var SVGNS = "http://www.w3.org/2000/svg";
  function el(name, attrs, text) {
    var e = document.createElementNS(SVGNS, name);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function pct(x) { return x === null || x === undefined ? "–" : (100 * x).toFixed(0) + " %"; }

  // Mean reward per checkpoint (load order, left axis); success rate per checkpoint (right axis, %) only
  // when the task reports success (success_rate is null otherwise); dashed verticals mark every reload.
  function drawPlot(cps) {
    var ok = cps.filter(function (c) { return c.success_rate !== null && c.success_rate !== undefined; });
    var svg = $("plot"), W = 320, H = 180, L = 42, R = ok.length ? 34 : 8, T = 10, B = 22;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    var pts = cps.filter(function (c) { return c.mean_reward !== null; });
    svg.setAttribute("data-points", String(pts.length));
    svg.setAttribute("data-success-points", String(ok.length));
    $("legend-success").hidden = !ok.length;
    svg.appendChild(el("line", { "class": "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }));
    svg.appendChild(el("line", { "class": "axis", x1: L, y1: T, x2: L, y2: H - B }));
    if (!cps.length) return;
    var n = cps.length, i0 = cps[0].index, i1 = cps[n - 1].index;
    var x = function (i) { return i1 === i0 ? (L + W - R) / 2 : L + (i - i0) * (W - R - L) / (i1 - i0); };
    cps.forEach(function (c) {
      svg.appendChild(el("line", { "class": "reload", x1: x(c.index), y1: T, x2: x(c.index), y2: H - B }));
    });
    svg.appendChild(el("text", { x: L, y: H - 6 }, "ep " + fmt(cps[0].epoch, 0)));
    svg.appendChild(el("text", { x: W - R, y: H - 6, "text-anchor": "end" }, "ep " + fmt(cps[n - 1].epoch, 0)));
    if (ok.length) drawSuccess(svg, ok, x, W - R, T, H - B);
    if (!pts.length) return;
    var ys = pts.map(function (c) { return c.mean_reward; });
    var lo = Math.min.apply(null, ys), hi = Math.max.apply(null, ys);
    if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
    var y = function (v) { return T + (hi - v) * (H - B - T) / (hi - lo); };
    svg.appendChild(el("text", { x: L - 4, y: T + 8, "text-anchor": "end" }, fmt(hi, Math.abs(hi) < 10 ? 2 : 0)));
    svg.appendChild(el("text", { x: L - 4, y: H - B, "text-anchor": "end" }, fmt(lo, Math.abs(lo) < 10 ? 2 : 0)));
    svg.appendChild(el("polyline", { "class": "line", points: pts.map(function (c) {
      return x(c.index).toFixed(1) + "," + y(c.mean_reward).toFixed(1); }).join(" ") }));
    pts.forEach(function (c) {
      var dot = el("circle", { cx: x(c.index), cy: y(c.mean_reward), r: 3 });
      dot.appendChild(el("title", {}, c.label + ": " + fmt(c.mean_reward) + " over " + c.episodes + " episode(s)"));
      svg.appendChild(dot);
    });
  }

  // The second series: success rate on a fixed 0-100 % right axis (so 0 % and 100 % mean the same everywhere).
  function drawSuccess(svg, ok, x, xr, top, bottom) {
    var y = function (v) { return bottom - v * (bottom - top); };
    svg.appendChild(el("line", { "class": "axis", x1: xr, y1: top, x2: xr, y2: bottom }));
    svg.appendChild(el("text", { "class": "success", x: xr + 3, y: top + 8 }, "100%"));
    svg.appendChild(el("text", { "class": "success", x: xr + 3, y: bottom }, "0%"));
    svg.appendChild(el("polyline", { "class": "line success", points: ok.map(function (c) {
      return x(c.index).toFixed(1) + "," + y(c.success_rate).toFixed(1); }).join(" ") }));
    ok.forEach(function (c) {
      var dot = el("rect", { "class": "success", x: x(c.index) - 2.5, y: y(c.success_rate) - 2.5, width: 5, height: 5 });
      dot.appendChild(el("title", {}, c.label + ": " + pct(c.success_rate) + " success over " +
        c.success_episodes + " episode(s)"));
      svg.appendChild(dot);
    });
  }

  function drawEvents(cps) {
    var ol = $("events"), recent = cps.slice(-20).reverse();
    var html = recent.map(function (c) {
      var t = new Date(c.loaded_at * 1000).toLocaleTimeString();
      return "<li>#" + c.index + " " + t + " — " + c.label.replace(/[<&>]/g, "") + " · " + c.episodes +
        " ep · " + fmt(c.mean_reward, 1) +
        (c.success_rate === null || c.success_rate === undefined ? "" : " · " + pct(c.success_rate)) + "</li>";
    }).join("");
    if (ol.innerHTML !== html) ol.innerHTML = html;
  }

  // Compare mode: one card per slot, in the order of the video's tiles (left to right, row by row).
  function esc(t) { return String(t).replace(/[<&>"]/g, ""); }
  function drawSlots(slots) {
    var box = $("slots");
    box.hidden = !slots.length;
    $("single").hidden = !!slots.length;
    if (!slots.length) return;
    var cols = slots.length <= 3 ? slots.length : Math.ceil(Math.sqrt(slots.length));
    box.style.gridTemplateColumns = "repeat(" + cols + ", 1fr)";
    var html = slots.map(function (sl) {
      var ck = sl.checkpoint, here = sl.here || {};
      var rate = here.success_rate === null || here.success_rate === undefined ? "" :
        "<dt>success here</dt><dd>" + pct(here.success_rate) + "</dd>";
      return '<div class="slot" data-label="' + esc(sl.label) + '"><h3>' + esc(sl.label) + "</h3><dl>" +
        "<dt>checkpoint</dt><dd>" + (ck ? esc(ck.label) : "waiting…") + "</dd>" +
        "<dt>episodes here</dt><dd>" + fmt(here.games, 0) + "</dd>" +
        "<dt>mean reward here</dt><dd>" + fmt(here.mean_reward) + "</dd>" + rate +
        "<dt>all episodes</dt><dd>" + sl.games + " · " + fmt(sl.mean_reward) +
        (sl.success_rate === null || sl.success_rate === undefined ? "" : " · " + pct(sl.success_rate)) + "</dd>" +
        "<dt>reloads</dt><dd>" + sl.reloads + "</dd></dl></div>";
    }).join("");
    if (box.innerHTML !== html) box.innerHTML = html;
  }

  function slotEvents(slots) {  // every slot's loads, oldest first, each named by its slot
    var all = [];
    slots.forEach(function (sl) {
      (sl.checkpoints || []).forEach(function (c) {
        var e = Object.assign({}, c); e.label = "[" + sl.label + "] " + c.label; all.push(e);
      });
    });
    return all.sort(function (a, b) { return a.loaded_at - b.loaded_at; });
  }

  function render(s) {
    polls += 1;
    document.body.setAttribute("data-polls", String(polls));
    set("source", s.source || "");
    var ck = s.checkpoint, cps = s.checkpoints || [];
    var here = ck ? cps.filter(function (c) { return c.index === ck.index; })[0] : null;
    set("ck-label", ck ? ck.label : "waiting for a checkpoint…");
    set("ck-epoch", ck ? fmt(ck.epoch, 0) : "–");
    set("ck-frame", ck ? fmt(ck.frame, 0) : "–");
    set("ck-age", age(s.file_age_s));
    set("ck-best", ck ? fmt(ck.best_reward) : "–");
    set("reloads", fmt(s.reloads, 0));
    set("ck-games", here ? String(here.episodes) : "–");
    set("ck-mean", here ? fmt(here.mean_reward) : "–");
    set("ck-success", here ? pct(here.success_rate) : "–");
    var known = here && here.success_rate !== null && here.success_rate !== undefined;
    $("ck-success").hidden = $("ck-success-dt").hidden = !known;  // no success signal: no row, not "0 %"
    set("fps", fmt(s.delivered_fps, 1));
    set("clients", String(s.clients));
    set("seq", String(s.stream ? s.stream.seq : "–"));
    $("nofeed").hidden = !!(s.stream && s.stream.seq > 0);
    drawSlots(s.slots || []);
    drawPlot(cps);
    drawEvents(s.slots && s.slots.length ? slotEvents(s.slots) : cps);
    lastCk = ck;
    renderControl(s.control);
  }

  // Controls (POST control/<action>, JSON body: same-origin only; the token rides in the cookie or ?token=).
  var ctl = null, lastCk = null;
  function renderControl(c) {
    ctl = c;
    $("controls").hidden = !c;
    if (!c) return;
    var box = $("controls");
    box.setAttribute("data-paused", String(c.paused));
    box.setAttribute("data-pinned", String(c.pinned));
    set("btn-pause", c.paused ? "Resume" : "Pause");
    set("btn-pin", c.pinned ? "Follow" : "Pin");
    set("ctl-state", (c.paused ? "paused" : "playing") + " · " + (c.pinned ? "pinned" : "following") +
      (c.newer_waiting ? " · newer checkpoint waiting" : ""));
    $("ctl-state").className = "badge" + (c.paused ? " paused" : "");
    var cur = lastCk ? lastCk.index : -1, sel = $("back-to");
    var opts = c.kept.map(function (k) {
      return '<option value="' + k.index + '">#' + k.index + " " + k.label.replace(/[<&>"]/g, "") +
        (k.index === cur ? " (playing)" : "") + "</option>";
    }).join("");
    if (sel.getAttribute("data-opts") !== opts) {  // keep the user's choice across polls
      var chosen = sel.value;
      sel.innerHTML = opts;
      sel.setAttribute("data-opts", opts);
      if (chosen) sel.value = chosen;
    }
    $("btn-back").disabled = !c.kept.some(function (k) { return k.index < cur; });
    $("btn-play").disabled = !c.kept.length;
  }

  function post(action, body) {
    return fetch("control/" + action + qs, {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json" }, body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.text().then(function (t) {
        var j = null;
        try { j = JSON.parse(t); } catch (e) { /* a plain-text refusal (401, 403, ...) */ }
        set("ctl-msg", j ? j.message : t.trim());
        if (j && j.control) renderControl(j.control);
      });
    }).catch(function (e) { set("ctl-msg", "control request failed: " + e.message); });
  }
  $("btn-pause").addEventListener("click", function () { post(ctl && ctl.paused ? "resume" : "pause"); });
  $("btn-pin").addEventListener("click", function () { post(ctl && ctl.pinned ? "follow" : "pin"); });
  $("btn-back").addEventListener("click", function () { post("back", { to: "previous" }); });
  $("btn-play").addEventListener("click", function () { post("back", { to: parseInt($("back-to").value, 10) }); });

  function poll() {
    fetch("status" + qs, { cache: "no-store", credentials: "same-origin" })
      .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then(function (s) { render(s); $("conn").textContent = "live"; $("conn").className = "badge ok"; })
      .catch(function (e) { $("conn").textContent = "disconnected (" + e.message + ")"; $("conn").className = "badge bad"; })
      .then(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
