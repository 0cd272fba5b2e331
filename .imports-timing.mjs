// cumulative import cost in one process, in order given
const root = process.argv[2];
const mods = process.argv.slice(3);
const out = [];
let t = process.hrtime.bigint();
const t0 = t;
for (const m of mods) {
  await import(m.startsWith('.') ? root + '/' + m : m);
  const n = process.hrtime.bigint();
  out.push([m, Number(n - t) / 1e6]);
  t = n;
}
console.log(JSON.stringify(out));
