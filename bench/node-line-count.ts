/**
 * The floor for any changelog check written in Node: start Node, read every byte of the files and
 * find every newline (`wc -l` in Node). Measured beside verify so its figure has a Node-sized yardstick.
 *   node dist/bench/node-line-count.js FILE…
 */
import { createReadStream } from 'node:fs';

let lines = 0;
for (const file of process.argv.slice(2)) {
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 20 })) {
    const buf = chunk as Buffer;
    for (let nl = buf.indexOf(0x0a); nl !== -1; nl = buf.indexOf(0x0a, nl + 1)) lines++;
  }
}
console.log(lines);
