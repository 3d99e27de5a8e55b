// Draws the two-channel waveform (caller above, organisation below) from the peaks the
// server computed for this grant, with a line where each later leg joined, and a cursor
// that follows the player.
(function () {
  const canvas = document.getElementById('wave');
  const player = document.getElementById('player');
  if (!canvas || !player) return;
  const ctx = canvas.getContext('2d');
  let peaks = null;
  const marks = (canvas.dataset.marks || '').split(',').filter(Boolean).map(Number);
  function draw() {
    const w = canvas.width, h = canvas.height, half = h / 2;
    ctx.clearRect(0, 0, w, h);
    if (peaks) {
      [['caller', 0, '#2a7ab0'], ['organisation', half, '#b0602a']].forEach(([ch, top, colour]) => {
        const p = peaks[ch];
        ctx.fillStyle = colour;
        for (let x = 0; x < p.length; x++) {
          const v = p[x] / 32768 * (half / 2 - 2);
          ctx.fillRect(x * w / p.length, top + half / 2 - v, Math.max(1, w / p.length), 2 * v + 1);
        }
      });
    }
    ctx.fillStyle = '#000';
    marks.forEach(f => ctx.fillRect(f * w, 0, 2, h));
    if (player.duration) {
      ctx.fillStyle = 'rgba(0,0,0,.35)';
      ctx.fillRect(player.currentTime / player.duration * w, 0, 2, h);
    }
  }
  fetch(canvas.dataset.peaks).then(r => r.json()).then(p => { peaks = p; draw(); });
  player.addEventListener('timeupdate', draw);
  canvas.addEventListener('click', e => {
    if (player.duration) {
      const r = canvas.getBoundingClientRect();
      player.currentTime = (e.clientX - r.left) / r.width * player.duration;
    }
  });
})();
