// The console's behaviour, for every page.
//
// Live parts of a page swap in fresh server-rendered HTML, so every handler here is bound once on
// the document and finds its element when the event happens: a button redrawn by a refresh keeps
// its confirmation. An element with data-live-url is refreshed from that small fragment every
// data-every ms; it keeps polling while the fragment holds an element marked data-running (or the
// element says data-always), and stops once a run ends.
(function () {
  "use strict";

  function ago(seconds) {
    if (seconds < 0) return "in the future";
    if (seconds < 10) return "just now";
    if (seconds < 60) return Math.floor(seconds) + " s ago";
    var m = Math.floor(seconds / 60);
    if (m < 60) return m + " min ago";
    var h = Math.floor(m / 60);
    if (h < 48) return h + " h " + ("0" + (m % 60)).slice(-2) + " min ago";
    var d = Math.floor(h / 24);
    return d + (d === 1 ? " day" : " days") + " ago";
  }

  function relTimes(root) {
    root.querySelectorAll("time.rel[datetime]").forEach(function (t) {
      var when = Date.parse(t.getAttribute("datetime"));
      if (!isNaN(when)) t.textContent = ago((Date.now() - when) / 1000);
    });
  }

  // A banner saying that something is under way ("Backup started", "Verifying...") is stale
  // once no live part of the page shows a run any more: the outcome has replaced it.
  function dropStaleBanners() {
    var live = document.querySelectorAll("[data-live-url]");
    if (!live.length) return;
    for (var i = 0; i < live.length; i++) {
      if (live[i].querySelector("[data-running]")) return;
    }
    document.querySelectorAll("[data-while-running]").forEach(function (m) { m.remove(); });
  }

  function poll(el) {
    var every = parseInt(el.dataset.every || "1500", 10);
    function again() {
      if (el.dataset.always !== undefined || el.querySelector("[data-running]")) setTimeout(tick, every);
    }
    function tick() {
      fetch(el.dataset.liveUrl, {credentials: "same-origin", headers: {"X-Requested-With": "fetch"}})
        .then(function (r) {
          if (r.redirected || r.status === 403) {
            el.insertAdjacentHTML("afterbegin",
              '<p class="msg msg-warning">Your session ended: reload the page to sign in again.</p>');
            return null;
          }
          return r.ok ? r.text() : "";
        })
        .then(function (html) {
          if (html === null) return;
          if (html) {
            el.innerHTML = html;
            relTimes(el);
            dropStaleBanners();
          }
          again();
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    if (el.dataset.loadNow !== undefined) tick(); else again();
  }

  function checkAsTyped(input) {
    var out = document.getElementById(input.dataset.checkOut), timer = null;
    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(function () {
        fetch(input.dataset.checkUrl + "?name=" + encodeURIComponent(input.value), {credentials: "same-origin"})
          .then(function (r) { return r.text(); })
          .then(function (html) { out.innerHTML = html; });
      }, 250);
    });
  }

  // One confirmation for every form that asks for one, wherever and whenever it was drawn.
  document.addEventListener("submit", function (e) {
    var form = e.target.closest ? e.target.closest("form[data-confirm]") : null;
    if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
  });

  // A choice that makes a part of the form stale (another backup: other indices) puts that part
  // away, its inputs disabled so they are not sent, and says why; focus stays where it was.
  document.addEventListener("change", function (e) {
    var s = e.target;
    if (!(s.matches && s.matches("select[data-puts-away]"))) return;
    var part = document.getElementById(s.dataset.putsAway);
    var note = document.getElementById(s.dataset.putsAway + "-stale");
    var stale = s.value !== s.dataset.shownFor;
    if (part) {
      part.hidden = stale;
      part.querySelectorAll("input").forEach(function (i) { i.disabled = stale; });
    }
    if (note) note.hidden = !stale;
  });

  relTimes(document);
  dropStaleBanners();
  document.querySelectorAll("[data-live-url]").forEach(poll);
  document.querySelectorAll("[data-check-url]").forEach(checkAsTyped);
  setInterval(function () { relTimes(document); }, 15000);
})();
