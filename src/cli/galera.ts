// Placeholder: filled in by the work on issue 7.
import type { Command } from 'commander';
import type { CliContext } from './main.js';

export function registerGalera(_program: Command, _ctx: CliContext): void {}
