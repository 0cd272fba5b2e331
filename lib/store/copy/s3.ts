import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { pipeline as pipe } from 'node:stream';
import type { S3Client } from '@aws-sdk/client-s3';
import YAML from 'yaml';
import type { S3CopyConfig } from '../../core/config.js';
import { ConfigError, TransferError } from '../../core/errors.js';
import { plainNameProblem } from '../../core/names.js';
import { boundedStream, type ReadBound } from '../../transport/bounded.js';
import { LISTING_ANSWER_BYTES, type Limit, type ListingBudget } from '../../transport/listing-bounds.js';
import { ID_PATTERN, SNAPSHOTS_DIR } from '../manifest.js';
import { copyNameProblem, type CopyRepository, type RemoteFile } from './repository.js';

/**
 * An off-site copy in an S3 bucket: objects `<prefix>snapshots/<id>/<file>`. Each PUT (or each part
 * of a multipart upload) carries Content-MD5, so the server refuses bytes that arrived damaged, and
 * records the file's sha256 as x-amz-meta-sha256, which a resumed push compares with HEAD. A single PUT
 * also sends x-amz-checksum-sha256, which an S3 that supports it verifies and returns on HEAD (compared
 * too); Ceph RGW 16 ignores it, so our own metadata is what works on every S3. An object appears
 * only when its PUT or CompleteMultipartUpload succeeds: never half of one.
 */

type S3 = typeof import('@aws-sdk/client-s3');

export interface S3Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** The credentials file: owner-only (like an SSH key), two string keys; the secret never reaches a message. */
export async function readCredentials(file: string, key: string): Promise<S3Credentials> {
  let st;
  try {
    st = await fs.stat(file);
  } catch (err) {
    throw new ConfigError(
      key,
      `cannot read S3 credentials file ${file} (${key}): ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
    );
  }
  if (st.mode & 0o077)
    throw new ConfigError(
      key,
      `S3 credentials file ${file} (${key}) is readable by others (mode ${(st.mode & 0o777).toString(8)}): refused; chmod 600 it`,
    );
  let doc: unknown;
  try {
    doc = YAML.parse(await fs.readFile(file, 'utf8'));
  } catch {
    throw new ConfigError(key, `S3 credentials file ${file} (${key}): not valid JSON or YAML`);
  }
  const { accessKeyId, secretAccessKey } = (doc ?? {}) as Record<string, unknown>;
  if (typeof accessKeyId !== 'string' || !accessKeyId || typeof secretAccessKey !== 'string' || !secretAccessKey) {
    throw new ConfigError(key, `S3 credentials file ${file} (${key}): expected accessKeyId and secretAccessKey`);
  }
  return { accessKeyId, secretAccessKey };
}

async function md5Of(file: string, start: number, end: number): Promise<string> {
  const hash = createHash('md5');
  if (end > start) await pipeline(createReadStream(file, { start, end: end - 1, highWaterMark: 1 << 20 }), hash);
  return hash.digest('base64');
}

/** One ListObjectsV2 answer, as the SDK parses it. */
interface Page {
  Contents?: { Key?: string; Size?: number }[];
  CommonPrefixes?: { Prefix?: string }[];
  IsTruncated?: boolean;
  NextContinuationToken?: string;
}
type Key = { key: string; size: number };
type Listed = { keys: Key[]; prefixes: string[] };

const labelOf = (copy: S3CopyConfig) =>
  `${copy.name} (s3 ${copy.endpoint ?? `region ${copy.region}`} ${copy.bucket}/${copy.prefix})`;

class S3Copy implements CopyRepository {
  readonly label: string;
  readonly window: Limit;
  private readonly root: string;
  constructor(
    private readonly copy: S3CopyConfig,
    key: string,
    private readonly sdk: S3,
    private readonly client: S3Client,
    area: string = SNAPSHOTS_DIR,
  ) {
    this.label = labelOf(copy);
    this.window = { seconds: copy.timeoutSeconds, setting: `${key}.timeoutSeconds` };
    this.root = `${copy.prefix}${area}/`;
  }
  get name(): string {
    return this.copy.name;
  }
  private keyOf(id: string, name?: string): string {
    const problem = copyNameProblem(id, name);
    if (problem) throw new TransferError(this.copy.name, `copy ${this.label}: ${problem}: refused`);
    return `${this.root}${id}/${name ?? ''}`;
  }
  private fail(op: string, what: string, err: unknown): TransferError {
    // The SDK appends a line of its own to an error raised while it parses an answer (answerCap's).
    if (err instanceof TransferError) {
      const [first, ...more] = err.message.split('\n');
      return more.length ? new TransferError(err.subject, first!, { cause: err }) : err;
    }
    const e = err as { name?: string; message?: string; code?: string; $metadata?: { httpStatusCode?: number } };
    const status = e.$metadata?.httpStatusCode ? ` (HTTP ${e.$metadata.httpStatusCode})` : '';
    const why =
      e.code === 'ECONNREFUSED' || /ECONNREFUSED/.test(e.message ?? '')
        ? 'connection refused (is the S3 endpoint up?)'
        : e.name === 'TimeoutError' || /requestTimeout|connectionTimeout/.test(e.message ?? '')
          ? `no answer within ${this.copy.timeoutSeconds} s (timeoutSeconds): the endpoint or the link is stalled`
          : `${e.name ?? 'Error'}: ${e.message ?? String(err)}`;
    return new TransferError(this.copy.name, `copy ${this.label}: ${op} ${what}: ${why}${status}`, { cause: err });
  }
  private async send<T>(op: string, what: string, command: unknown, abortSignal?: AbortSignal): Promise<T> {
    try {
      return (await this.client.send(command as never, { abortSignal } as never)) as T;
    } catch (err) {
      throw this.fail(op, what, err);
    }
  }
  /** Every key under `prefix`, following continuation tokens, each page counted against the listing's budget. */
  private async listAll(prefix: string, budget: ListingBudget, delimiter?: string): Promise<Listed> {
    const keys: Key[] = [];
    const prefixes: string[] = [];
    let token: string | undefined;
    do {
      const command = new this.sdk.ListObjectsV2Command({
        Bucket: this.copy.bucket,
        Prefix: prefix,
        Delimiter: delimiter,
        ContinuationToken: token,
      });
      const page = await budget.answer(prefix, (signal) => this.send<Page>('list', prefix, command, signal));
      const contents = (page.Contents ?? []).filter((c) => c.Key !== undefined);
      const common = (page.CommonPrefixes ?? []).filter((p) => p.Prefix !== undefined);
      budget.page(prefix, [...contents.map((c) => c.Key!), ...common.map((p) => p.Prefix!)]);
      for (const c of contents) keys.push({ key: c.Key!, size: c.Size ?? 0 });
      for (const p of common) prefixes.push(p.Prefix!);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return { keys, prefixes };
  }
  async listSnapshotIds(budget: ListingBudget): Promise<{ ids: string[]; skipped: string[] }> {
    const { keys, prefixes } = await this.listAll(this.root, budget, '/');
    const names = prefixes.map((p) => p.slice(this.root.length, -1));
    const ids = names.filter((n) => ID_PATTERN.test(n)).sort();
    return {
      ids,
      skipped: [...names.filter((n) => !ID_PATTERN.test(n)), ...keys.map((k) => k.key.slice(this.root.length))],
    };
  }
  async listFiles(id: string, budget: ListingBudget): Promise<RemoteFile[]> {
    const prefix = this.keyOf(id);
    const { keys } = await this.listAll(prefix, budget);
    // Keys with a further '/' (or any odd name) are not files of this snapshot: never used.
    return keys
      .map((k) => ({ name: k.key.slice(prefix.length), size: k.size }))
      .filter((f) => !plainNameProblem(f.name));
  }
  async hasFile(id: string, name: string, expect: { size: number; sha256: string }): Promise<boolean> {
    try {
      const head = await this.client.send(
        new this.sdk.HeadObjectCommand({
          Bucket: this.copy.bucket,
          Key: this.keyOf(id, name),
          ChecksumMode: 'ENABLED',
        }),
      );
      // The server's own full-object sha256 where it keeps one (not for multipart: those are per part).
      const serverSha =
        head.ChecksumSHA256 && !head.ChecksumSHA256.includes('-')
          ? Buffer.from(head.ChecksumSHA256, 'base64').toString('hex')
          : undefined;
      return (
        head.ContentLength === expect.size &&
        head.Metadata?.sha256 === expect.sha256 &&
        (serverSha === undefined || serverSha === expect.sha256)
      );
    } catch (err) {
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
      throw this.fail('head', this.keyOf(id, name), err);
    }
  }
  async put(id: string, name: string, localFile: string, expect: { size: number; sha256: string }): Promise<void> {
    const Key = this.keyOf(id, name);
    const partSize = this.copy.partSizeMiB * 2 ** 20;
    const Metadata = { sha256: expect.sha256 };
    if (expect.size <= partSize) {
      // x-amz-checksum-sha256 too: an S3 that knows it (AWS, Ceph Reef+) checks the whole object against it and keeps it.
      const ChecksumSHA256 = Buffer.from(expect.sha256, 'hex').toString('base64');
      await this.send(
        'upload',
        Key,
        new this.sdk.PutObjectCommand({
          Bucket: this.copy.bucket,
          Key,
          Body: createReadStream(localFile),
          ContentLength: expect.size,
          ContentMD5: await md5Of(localFile, 0, expect.size),
          ChecksumSHA256,
          Metadata,
        }),
      );
      return;
    }
    const created = await this.send<{ UploadId?: string }>(
      'start multipart upload of',
      Key,
      new this.sdk.CreateMultipartUploadCommand({ Bucket: this.copy.bucket, Key, Metadata }),
    );
    const UploadId = created.UploadId!;
    try {
      const parts: { ETag?: string; PartNumber: number }[] = [];
      for (let start = 0, n = 1; start < expect.size; start += partSize, n++) {
        const end = Math.min(expect.size, start + partSize);
        const Body = createReadStream(localFile, { start, end: end - 1 });
        const res = await this.send<{ ETag?: string }>(
          'upload part of',
          Key,
          new this.sdk.UploadPartCommand({
            Bucket: this.copy.bucket,
            Key,
            UploadId,
            PartNumber: n,
            Body,
            ContentLength: end - start,
            ContentMD5: await md5Of(localFile, start, end),
          }),
        );
        parts.push({ ETag: res.ETag, PartNumber: n });
      }
      await this.send(
        'complete multipart upload of',
        Key,
        new this.sdk.CompleteMultipartUploadCommand({
          Bucket: this.copy.bucket,
          Key,
          UploadId,
          MultipartUpload: { Parts: parts },
        }),
      );
    } catch (err) {
      await this.client
        .send(new this.sdk.AbortMultipartUploadCommand({ Bucket: this.copy.bucket, Key, UploadId }))
        .catch(() => undefined);
      throw err;
    }
  }
  async read(id: string, name: string, bound: ReadBound): Promise<Readable> {
    const Key = this.keyOf(id, name);
    const got = await this.send<{ Body?: unknown }>(
      'read',
      Key,
      new this.sdk.GetObjectCommand({ Bucket: this.copy.bucket, Key }),
    );
    const body = got.Body instanceof Readable ? got.Body : Readable.from([]);
    return boundedStream(body, {
      host: this.copy.name,
      what: `copy ${this.label}: ${Key}`,
      bound,
      idleSeconds: this.copy.timeoutSeconds,
      mapError: (err) => this.fail('read', Key, err),
    });
  }
  async remove(id: string, name: string): Promise<void> {
    await this.send(
      'delete',
      this.keyOf(id, name),
      new this.sdk.DeleteObjectCommand({ Bucket: this.copy.bucket, Key: this.keyOf(id, name) }),
    );
  }
  async removeSnapshotDir(): Promise<void> {}
  async close(): Promise<void> {
    this.client.destroy();
  }
}

export async function openS3Copy(copy: S3CopyConfig, key: string, area = SNAPSHOTS_DIR): Promise<CopyRepository> {
  const credentials = await readCredentials(copy.credentialsFile, `${key}.credentialsFile`);
  // The SDK's notice about its own future Node requirement is not the operator's business (cron mail).
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  // Loaded on first use: the SDK is big, and most runs never touch S3.
  const sdk = await import('@aws-sdk/client-s3');
  const ms = copy.timeoutSeconds * 1000;
  const client = new sdk.S3Client({
    endpoint: copy.endpoint,
    region: copy.region,
    forcePathStyle: copy.forcePathStyle,
    credentials,
    maxAttempts: 2,
    // Content-MD5 and our sha256 metadata protect the bytes; the SDK's default CRC trailers are not
    // understood by every S3 server (Ceph RGW 16), so it adds checksums only where an API requires them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // A request silent for timeoutSeconds fails (without throwOnRequestTimeout the SDK only logs it and waits on).
    requestHandler: { connectionTimeout: ms, requestTimeout: ms, throwOnRequestTimeout: true },
  });
  client.middlewareStack.add(answerCap(copy) as never, { step: 'deserialize', priority: 'low', name: 'answerCap' });
  return new S3Copy(copy, key, sdk, client, area);
}

/**
 * The SDK reads a whole answer into memory before it parses it (a listing page, an error): a server
 * sending a page without end would fill it. Every answer but an object's bytes (GetObject, read
 * through boundedStream) is cut at LISTING_ANSWER_BYTES. Priority 'low' in the deserialize step: inside
 * the SDK's deserializer, so it reads the capped body.
 */
function answerCap(copy: S3CopyConfig) {
  type Next = (args: unknown) => Promise<{ response: { statusCode?: number; body?: unknown } }>;
  return (next: Next, context: { commandName?: string }) => async (args: unknown) => {
    const out = await next(args);
    const { response } = out;
    const objectBytes = context.commandName === 'GetObjectCommand' && (response.statusCode ?? 0) < 300;
    if (objectBytes || !(response.body instanceof Readable)) return out;
    let got = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        got += chunk.length;
        if (got <= LISTING_ANSWER_BYTES) return cb(null, chunk);
        const what = `an answer to ${context.commandName ?? 'a request'} longer than ${LISTING_ANSWER_BYTES} bytes`;
        cb(new TransferError(copy.name, `copy ${labelOf(copy)}: ${what}: refused, not parsed`));
      },
    });
    // Either end failing ends both: an abandoned request (its socket destroyed) ends the capped body too.
    response.body = pipe(response.body, cap, () => undefined);
    return out;
  };
}
