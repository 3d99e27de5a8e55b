// Opens the message a click on the SIP ladder points to (#sip-N), and the one the address
// names when the page is opened with it.
(function () {
  function open(hash) {
    const d = hash && document.getElementById(hash.slice(1));
    if (d && d.tagName === 'DETAILS') {
      d.open = true;
      d.scrollIntoView({ block: 'nearest' });
    }
  }
  document.addEventListener('click', (e) => {
    const a = e.target.closest && e.target.closest('a');
    const href = a && (a.getAttribute('href') || a.getAttribute('xlink:href'));
    if (href && href.startsWith('#sip-')) open(href);
  });
  window.addEventListener('hashchange', () => open(location.hash));
  open(location.hash);
})();
