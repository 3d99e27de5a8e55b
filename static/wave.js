// Draws the two-channel waveform (caller above, organisation below) from the peaks the
// server computed for this grant, with a line where each later leg joined, a time axis, a
// cursor that follows the player, and zoom (buttons, or the wheel over the waveform). When
// zoomed in, the view follows playback.
(function () {
  const canvas = document.getElementById('wave');
  const player = document.getElementById('player');
  if (!canvas || !player) return;
  const ctx = canvas.getContext('2d');
  const shown = document.getElementById('wave-zoom');
  const known = Number(player.dataset.durationMs) / 1000 || 0;
  const marks = (canvas.dataset.marks || '').split(',').filter(Boolean).map(Number);
  const AXIS = 18; // px under the channels for the time axis
  const MIN_SPAN = 1 / 64; // the deepest zoom: 1/64 of the call
  let peaks = null;
  let view = [0, 1]; // the part of the call shown, as fractions of it

  const seconds = () => (isFinite(player.duration) && player.duration > 0 ? player.duration : known);
  const clock = (s, fine) => {
    const m = Math.floor(s / 60);
    const r = s - m * 60;
    return `${m}:${fine ? r.toFixed(1).padStart(4, '0') : String(Math.floor(r)).padStart(2, '0')}`;
  };
  const tick = (span) => [0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600]
    .find((s) => span / s <= 10) || 7200;

  function draw() {
    const w = canvas.width;
    const h = canvas.height - AXIS;
    const half = h / 2;
    const [a, b] = view;
    const span = b - a;
    const x = (f) => (f - a) / span * w;
    ctx.clearRect(0, 0, w, canvas.height);
    if (peaks) {
      [['caller', 0, '#2a7ab0'], ['organisation', half, '#b0602a']].forEach(([ch, top, colour]) => {
        const p = peaks[ch];
        const n = p.length;
        ctx.fillStyle = colour;
        for (let i = Math.max(0, Math.floor(a * n)); i < Math.min(n, Math.ceil(b * n)); i++) {
          const v = p[i] / 32768 * (half / 2 - 2);
          ctx.fillRect(x(i / n), top + half / 2 - v, Math.max(1, w / (n * span)), 2 * v + 1);
        }
      });
    }
    ctx.fillStyle = '#000';
    marks.filter((f) => f >= a && f <= b).forEach((f) => ctx.fillRect(x(f), 0, 2, h));
    const d = seconds();
    if (d > 0) {
      const step = tick(span * d);
      ctx.fillStyle = '#333';
      ctx.fillRect(0, h, w, 1);
      ctx.font = '12px sans-serif';
      for (let t = Math.ceil(a * d / step) * step; t <= b * d + 1e-9; t += step) {
        const px = x(t / d);
        ctx.fillRect(px, h, 1, 5);
        ctx.fillText(clock(t, step < 1), Math.min(px + 2, w - 40), h + 15);
      }
      ctx.fillStyle = 'rgba(0,0,0,.35)';
      const c = player.currentTime / d;
      if (c >= a && c <= b) ctx.fillRect(x(c), 0, 2, h);
      if (shown) {
        const fine = span * d < 10;
        shown.textContent = span >= 1 ? `Whole call, ${clock(d, false)}` : `Showing ${clock(a * d, fine)} – ${clock(b * d, fine)} of ${clock(d, false)}`;
      }
    }
  }

  function zoom(factor, centre) {
    const span = Math.min(1, Math.max(MIN_SPAN, (view[1] - view[0]) * factor));
    const a = Math.max(0, Math.min(1 - span, centre - span / 2));
    view = [a, a + span];
    draw();
  }
  const cursor = () => (seconds() > 0 ? player.currentTime / seconds() : (view[0] + view[1]) / 2);
  const button = (id, f) => { const b = document.getElementById(id); if (b) b.addEventListener('click', f); };
  button('zoom-in', () => zoom(0.5, player.currentTime > 0 ? cursor() : (view[0] + view[1]) / 2));
  button('zoom-out', () => zoom(2, (view[0] + view[1]) / 2));
  button('zoom-all', () => zoom(64, 0.5));
  canvas.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = canvas.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 0.8 : 1.25, view[0] + (e.clientX - r.left) / r.width * (view[1] - view[0]));
  }, { passive: false });
  canvas.addEventListener('click', (e) => {
    const d = seconds();
    if (d > 0) {
      const r = canvas.getBoundingClientRect();
      player.currentTime = (view[0] + (e.clientX - r.left) / r.width * (view[1] - view[0])) * d;
    }
  });
  player.addEventListener('timeupdate', () => {
    // zoomed in, the view keeps the cursor in sight
    const c = cursor();
    const span = view[1] - view[0];
    if (span < 1 && (c < view[0] || c > view[1])) {
      const a = Math.max(0, Math.min(1 - span, c - span * 0.1));
      view = [a, a + span];
    }
    draw();
  });
  player.addEventListener('loadedmetadata', draw);
  fetch(canvas.dataset.peaks).then((r) => r.json()).then((p) => { peaks = p; draw(); });
  draw();
})();
