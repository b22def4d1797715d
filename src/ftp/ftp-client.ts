// An FTP client (basic-ftp) for the hosting demo, the FTP tests and the failover benchmark: log in,
// upload/download buffers in passive mode, list. PASV (IPv4) is forced rather than
// EPSV, so that the address vsftpd announces in its 227 reply is what the data connection uses.
import { PassThrough, Readable } from 'node:stream';
import { Client, enterPassiveModeIPv4 } from 'basic-ftp';

export interface FtpLogin {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly timeoutMs?: number;
}

export async function withFtp<T>(login: FtpLogin, body: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client(login.timeoutMs ?? 5_000);
  client.prepareTransfer = enterPassiveModeIPv4;
  try {
    await client.access({ host: login.host, port: login.port, user: login.user, password: login.password });
    return await body(client);
  } finally {
    client.close();
  }
}

export async function upload(client: Client, name: string, bytes: Buffer): Promise<void> {
  await client.uploadFrom(Readable.from([bytes]), name);
}

export async function download(client: Client, name: string): Promise<Buffer> {
  const sink = new PassThrough();
  const chunks: Buffer[] = [];
  sink.on('data', (c: Buffer) => chunks.push(c));
  await client.downloadTo(sink, name);
  return Buffer.concat(chunks);
}

/** `host:port` → parts (the announced address). */
export function splitAddress(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  return { host: address.slice(0, i), port: Number(address.slice(i + 1)) };
}
