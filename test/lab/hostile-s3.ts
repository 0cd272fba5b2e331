import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Socket } from 'node:net';

/**
 * An S3 endpoint (node:http, path-style, no authentication checked) that speaks just enough S3 XML
 * for @aws-sdk/client-s3's ListObjectsV2, and lies in one way per `mode`:
 * - `endless`: every page is truncated, with a new continuation token and `keysPerPage` new keys;
 * - `endless-empty`: every page is truncated and holds nothing;
 * - `drip`: the answer's headers, then its body one byte every `dripMs`, never finished;
 * - `huge`: one page whose body is `hugeBytes` long (keys without end, sent as fast as read);
 * - `entities`: a page whose XML declares nested entities (billion laughs) and uses the biggest.
 * Any other request (GetObject, HEAD) is a 404.
 */
export type HostileS3Mode = 'endless' | 'endless-empty' | 'drip' | 'huge' | 'entities';

export interface HostileS3Options {
  keysPerPage?: number;
  /** Bytes of each key name in `endless` pages. */
  keyBytes?: number;
  dripMs?: number;
  hugeBytes?: number;
}

const HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n';
const NS = 'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"';

function contents(key: string): string {
  const modified = '<LastModified>2026-12-01T00:00:00.000Z</LastModified>';
  const rest = '<ETag>"0"</ETag><Size>1</Size><StorageClass>STANDARD</StorageClass>';
  return `<Contents><Key>${key}</Key>${modified}${rest}</Contents>`;
}

/** The classic billion laughs: ten levels of ten references each, 10^9 "lol"s (3 GB) if expanded. */
export const BILLION_LAUGHS_ENTITIES = [
  '<!ENTITY lol "lol">',
  ...Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i || ''};`.repeat(10)}">`),
].join('\n');

export class HostileS3 {
  /** ListObjectsV2 requests answered (or begun). */
  pages = 0;
  /** Body bytes written to clients. */
  served = 0;
  private readonly sockets = new Set<Socket>();
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    private readonly server: http.Server,
    readonly port: number,
    private readonly mode: HostileS3Mode,
    private readonly o: Required<HostileS3Options>,
  ) {}

  static async start(mode: HostileS3Mode, o: HostileS3Options = {}): Promise<HostileS3> {
    const options = { keysPerPage: 1000, keyBytes: 100, dripMs: 5000, hugeBytes: 200 * 2 ** 20, ...o };
    let self: HostileS3 | undefined;
    const server = http.createServer((req, res) => self!.answer(req, res));
    server.on('connection', (s) => {
      self?.sockets.add(s);
      s.on('close', () => self?.sockets.delete(s));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    self = new HostileS3(server, (server.address() as AddressInfo).port, mode, options);
    return self;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private write(res: http.ServerResponse, text: string): boolean {
    this.served += Buffer.byteLength(text);
    return res.write(text);
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://s3');
    req.resume();
    if (req.method !== 'GET' || url.searchParams.get('list-type') !== '2') {
      res.writeHead(404, { 'content-type': 'application/xml' });
      res.end(`${HEAD}<Error><Code>NoSuchKey</Code><Message>not here</Message></Error>`);
      return;
    }
    const page = ++this.pages;
    const prefix = url.searchParams.get('prefix') ?? '';
    const delimiter = url.searchParams.get('delimiter');
    res.writeHead(200, { 'content-type': 'application/xml' });
    const delimiterTag = delimiter ? `<Delimiter>${delimiter}</Delimiter>` : '';
    const open = `${HEAD}<ListBucketResult ${NS}><Name>b</Name><Prefix>${prefix}</Prefix>${delimiterTag}<MaxKeys>1000</MaxKeys>`;
    switch (this.mode) {
      case 'endless':
      case 'endless-empty': {
        const n = this.mode === 'endless' ? this.o.keysPerPage : 0;
        const pad = 'k'.repeat(Math.max(1, this.o.keyBytes - prefix.length - 12));
        const token = `<NextContinuationToken>token-${page}</NextContinuationToken>`;
        let body = `${open}<KeyCount>${n}</KeyCount><IsTruncated>true</IsTruncated>${token}`;
        for (let i = 0; i < n; i++) body += contents(`${prefix}${pad}-${page}-${i}`);
        res.end(`${body}</ListBucketResult>`);
        this.served += Buffer.byteLength(body);
        return;
      }
      case 'drip': {
        const text = `${open}<KeyCount>1</KeyCount><IsTruncated>false</IsTruncated>${contents(`${prefix}x`)}</ListBucketResult>`;
        let at = 0;
        const drip = () => {
          if (res.destroyed) return;
          // Never the last byte: the answer never completes.
          if (at < text.length - 1) this.write(res, text[at++]!);
          const t = setTimeout(() => {
            this.timers.delete(t);
            drip();
          }, this.o.dripMs);
          this.timers.add(t);
        };
        drip();
        return;
      }
      case 'huge': {
        let sent = 0;
        this.write(res, `${open}<IsTruncated>false</IsTruncated>`);
        const one = contents(`${prefix}${'h'.repeat(900)}`);
        const pump = () => {
          while (sent < this.o.hugeBytes && !res.destroyed) {
            sent += one.length;
            if (!this.write(res, one)) return void res.once('drain', pump);
          }
          if (!res.destroyed) res.end('</ListBucketResult>');
        };
        res.on('close', () => (sent = Infinity));
        pump();
        return;
      }
      case 'entities': {
        const doctype = `<!DOCTYPE ListBucketResult [\n${BILLION_LAUGHS_ENTITIES}\n]>\n`;
        const doc =
          `${HEAD}${doctype}<ListBucketResult ${NS}><Name>b</Name><Prefix>${prefix}</Prefix><KeyCount>1</KeyCount>` +
          `<IsTruncated>false</IsTruncated>${contents(`${prefix}&lol9;`)}</ListBucketResult>`;
        this.served += doc.length;
        res.end(doc);
        return;
      }
    }
  }
}
