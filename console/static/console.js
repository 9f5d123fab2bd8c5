// bridge console: the little the pages do in the browser. Without it every
// page still reads: times show "3 min ago" as the server saw it, with the
// exact UTC time on hover. With it, the hover shows the reader's own time
// zone and the "ago" stays current while the page is open.
(function () {
  'use strict';

  function span(ms) {
    var future = ms < 0, s = Math.abs(ms) / 1000, t;
    if (s < 5) return 'just now';
    if (s < 60) t = Math.floor(s) + ' s';
    else if (s < 3600) t = Math.floor(s / 60) + ' min';
    else if (s < 48 * 3600) t = Math.floor(s / 3600) + ' h';
    else if (s < 60 * 86400) t = Math.floor(s / 86400) + ' days';
    else return null; // older: the server's date stays
    return future ? 'in ' + t : t + ' ago';
  }

  function update() {
    var els = document.querySelectorAll('time[datetime]');
    for (var i = 0; i < els.length; i++) {
      var el = els[i], at = Date.parse(el.getAttribute('datetime'));
      if (isNaN(at)) continue;
      if (!el.hasAttribute('data-utc')) {
        el.setAttribute('data-utc', el.title);
        el.title = new Date(at).toLocaleString(undefined, {
          year: 'numeric', month: 'short', day: 'numeric',
          hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short'
        }) + '\n' + el.title;
      }
      var text = span(Date.now() - at);
      if (text !== null) el.textContent = text;
    }
  }

  document.addEventListener('DOMContentLoaded', function () {
    update();
    setInterval(update, 15000);
  });
})();
