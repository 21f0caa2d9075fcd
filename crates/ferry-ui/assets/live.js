// ferry ui: refreshes the page's <main> in place every few seconds (the server renders it);
// without this script the page is the same, only as of its loading.
(function () {
  var main = document.getElementById("live");
  if (!main || !window.fetch) { return; }
  var url = main.getAttribute("data-refresh");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) {
        if (html !== null && html !== main.innerHTML && !main.contains(document.activeElement)) { main.innerHTML = html; }
      })
      .catch(function () {})
      .then(function () { setTimeout(refresh, 2000); });
  }
  setTimeout(refresh, 2000);
})();
