// Keyboard triage for the queue and the case page. No framework: the pages
// work without it, this only adds keys.
(function () {
  "use strict";
  function typing(e) {
    var t = e.target;
    return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable);
  }
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  var cur = rows.length ? 0 : -1;
  function mark() {
    rows.forEach(function (r, i) { r.classList.toggle("sel", i === cur); });
    if (cur >= 0) rows[cur].scrollIntoView({block: "nearest"});
  }
  if (rows.length) mark();
  rows.forEach(function (r, i) {
    r.addEventListener("click", function (e) {
      if (e.target.tagName === "INPUT" || e.target.tagName === "A") return;
      cur = i; mark();
    });
    r.addEventListener("dblclick", function () { location.href = r.dataset.href; });
  });
  var all = document.getElementById("select-all");
  if (all) all.addEventListener("change", function () {
    document.querySelectorAll("input[name=case]").forEach(function (c) { c.checked = all.checked; });
  });
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) { if (!confirm(f.dataset.confirm)) e.preventDefault(); });
  });
  document.addEventListener("keydown", function (e) {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey) return;
    if (rows.length) {
      if (e.key === "j") { cur = Math.min(cur + 1, rows.length - 1); mark(); e.preventDefault(); }
      else if (e.key === "k") { cur = Math.max(cur - 1, 0); mark(); e.preventDefault(); }
      else if (e.key === "Enter" && cur >= 0) { location.href = rows[cur].dataset.href; }
      else if (e.key === "x" && cur >= 0) { var c = rows[cur].querySelector("input[name=case]"); if (c) c.checked = !c.checked; }
      return;
    }
    if (e.key === "a") {
      var ap = document.getElementById("approve-form");
      if (ap) { e.preventDefault(); ap.querySelector("textarea, button").focus(); }
    } else if (e.key === "r") {
      var rs = document.getElementById("reject-reason");
      if (rs) { e.preventDefault(); rs.focus(); }
    } else if (e.key === "j" || e.key === "k") {
      var n = document.getElementById(e.key === "j" ? "next-case" : "prev-case");
      if (n) location.href = n.href;
    } else if (e.key === "Escape" || e.key === "u") {
      var q = document.getElementById("back-to-queue");
      if (q) location.href = q.href;
    }
  });
})();

// The queue looks for new cases every 30 s: it reloads its own page in the
// background and shows a notice (never moves the rows under the officer)
// when the first case or the count differs.
(function () {
  var table = document.getElementById("queue"), note = document.getElementById("new-cases");
  if (!table || !note || !window.fetch || !window.DOMParser) return;
  var check = function () {
    fetch(location.href, {credentials: "same-origin"}).then(function (r) { return r.ok ? r.text() : ""; }).then(function (html) {
      if (!html) return;
      var t = new DOMParser().parseFromString(html, "text/html").getElementById("queue");
      if (t && (t.dataset.first !== table.dataset.first || t.dataset.total !== table.dataset.total)) note.hidden = false;
    }).catch(function () {});
  };
  window.plumeQueueCheck = check;
  setInterval(check, 30000);
})();
