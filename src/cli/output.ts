// Where the CLI writes: injected so that commands run in-process in tests and print for real in main.

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const processOutput: Output = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : text + '\n'),
  err: (text) => void process.stderr.write(text.endsWith('\n') ? text : text + '\n'),
};

/** Collects output in memory (tests). */
export class BufferOutput implements Output {
  stdout = '';
  stderr = '';
  out(text: string): void {
    this.stdout += text.endsWith('\n') ? text : text + '\n';
  }
  err(text: string): void {
    this.stderr += text.endsWith('\n') ? text : text + '\n';
  }
}
