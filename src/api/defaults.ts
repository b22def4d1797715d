// Where a host's fleetd API listens by default: kept apart from the server so that the CLI can
// know it without loading fastify.
export const DEFAULT_API_SOCKET = '/run/fleetts/fleetd.sock';
export const DEFAULT_API_ENDPOINT = `unix://${DEFAULT_API_SOCKET}`;
