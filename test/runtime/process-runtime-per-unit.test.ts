// test/runtime/process-runtime.test.ts against per-unit supervisors (ProcessRuntimeDeps.supervisor
// 'per-unit', fleetts 0.1's way, still adopted after an upgrade and still selectable).

import { useSupervisor } from './helpers.js';

useSupervisor('per-unit');
await import('./process-runtime.test.js');
