// The dashboard's only script: poll the overview fragment, and search without reloading the page.
// Without it the page still works (the state at load time; the search form is a plain GET).
(function () {
  "use strict";
  var body = document.body;
  var refreshMs = Math.max(1, Number(body.dataset.refreshS) || 3) * 1000;
  var overview = document.getElementById("overview");
  var updated = document.getElementById("updated");
  var busy = false;

  function fetchText(url) {
    // Each request has a deadline: a directory that hangs must not pile up requests.
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, refreshMs * 2);
    return fetch(url, {headers: {"Accept": "text/html"}, signal: controller.signal, cache: "no-store"})
      .then(function (answer) {
        if (!answer.ok) { throw new Error("HTTP " + answer.status); }
        return answer.text();
      })
      .finally(function () { clearTimeout(timer); });
  }

  function refresh() {
    if (busy) { return; }
    busy = true;
    fetchText(body.dataset.overviewUrl).then(function (html) {
      overview.innerHTML = html;
      var stamp = document.getElementById("stamp");
      updated.textContent = "updated " + (stamp ? stamp.dataset.clock : "");
      updated.classList.remove("stale");
    }).catch(function (error) {
      updated.textContent = "the directory does not answer (" + error.message + "); retrying";
      updated.classList.add("stale");
    }).finally(function () { busy = false; });
  }

  var form = document.getElementById("search");
  var results = document.getElementById("results");
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var q = document.getElementById("q").value;
    var query = "?q=" + encodeURIComponent(q);
    results.setAttribute("aria-busy", "true");
    fetchText(body.dataset.searchUrl + query).then(function (html) {
      results.innerHTML = html;
      history.replaceState(null, "", query);
    }).catch(function (error) {
      results.textContent = "search failed: " + error.message;
    }).finally(function () { results.removeAttribute("aria-busy"); });
  });

  setInterval(refresh, refreshMs);
}());
