// The web farm's files on shared storage (the "configuration and user files on shared storage" of a
// real farm): Apache's one configuration for every web@ instance, the site, nginx's configuration and
// the first upstream file, and the unit files as submitted. Pure: the demo writes what this returns.
import { DEFAULT_SHARED_PATH } from '../dev/defaults.js';
import { renderUpstream } from '../discovery/render-upstream.js';

/** Where lb-upstream.unit's 503 fallback server listens: loopback is per host, so lbs never clash. */
export const LB_FALLBACK_LISTEN = '127.0.0.1:8079';
/** The port lb.unit listens on (every address of its host). */
export const LB_PORT = 80;
/** web@N listens on 808N (instances 1–9): two instances can share a host. */
export function webPort(instance: number): number {
  return 8080 + instance;
}

/** The farm's unit files, in the order they are started (examples/process/). */
export const WEB_TEMPLATES = ['web@.unit', 'web-discovery@.unit'] as const;
export const LB_UNITS = ['lb.unit', 'lb-upstream.unit', 'lb-discovery.unit'] as const;
/** The balancer's floating address (docs/floating-address.md): only with lb/floating-address.env. */
export const FLOATING_UNIT = 'lb-address.unit';
/** The process farm's units that run on every host (Global=true): a balancer and its sidekicks each. */
export const GLOBAL_UNITS: readonly string[] = [...LB_UNITS, FLOATING_UNIT];

export interface FarmPaths {
  /** Where every host sees the shared directory. */
  readonly shared: string;
  readonly apacheConf: string;
  readonly htdocs: string;
  /** nginx's configuration as written; lb.unit copies it to lbNginxConf(machine) at each start. */
  readonly nginxConf: string;
  /**
   * The first upstream file: lb.unit copies it to lbUpstreamFile(machine) when that is missing (the
   * container farm's lb.unit mounts its directory instead).
   */
  readonly upstreamFile: string;
  /** lb-address.unit's FLOATING_ADDRESS and FLOATING_INTERFACE. */
  readonly floatingEnv: string;
  /** The unit files as the demo submits them. */
  readonly units: string;
}

export function farmPaths(shared: string): FarmPaths {
  return {
    shared,
    apacheConf: `${shared}/web/apache.conf`,
    htdocs: `${shared}/web/htdocs`,
    nginxConf: `${shared}/lb/nginx.conf`,
    upstreamFile: `${shared}/lb/conf.d/upstream-web.conf`,
    floatingEnv: `${shared}/lb/floating-address.env`,
    units: `${shared}/units`,
  };
}

/** What the farm's units keep per machine in /run (web@.unit's WEB_RUN_DIR, lb.unit's prefix). */
export function machineRunDir(machineId: string): string {
  return `/run/fleetts/${machineId}`;
}

/**
 * The per-machine prefix of lb.unit's nginx (its pid file and error log), as lb.unit's `-p
 * /run/fleetts/%m/lb/` names it.
 */
export function lbPrefix(machineId: string): string {
  return `${machineRunDir(machineId)}/lb/`;
}

/** This machine's copy of nginx.conf, which its lb.unit runs with. */
export function lbNginxConf(machineId: string): string {
  return `${lbPrefix(machineId)}nginx.conf`;
}

/** This machine's upstream file, rendered by its lb-upstream.unit. */
export function lbUpstreamFile(machineId: string): string {
  return `${lbPrefix(machineId)}conf.d/upstream-web.conf`;
}

/** Relative path under the shared directory → file text. */
export function farmSharedFiles(shared: string): Record<string, string> {
  const p = farmPaths(shared);
  return {
    'web/apache.conf': apacheConf(p),
    'web/htdocs/index.shtml': INDEX_PAGE,
    'lb/nginx.conf': nginxConf(p),
    // nginx refuses to start on a missing include target's upstream: lb.unit copies this first
    // version to its host's conf.d/ when there is none there yet.
    'lb/conf.d/upstream-web.conf': renderUpstream([], {
      name: 'web',
      service: 'web',
      fallbackListen: LB_FALLBACK_LISTEN,
    }),
  };
}

/** lb/floating-address.env: the address (`10.0.0.100/24`) and interface lb-address.unit keeps it on. */
export function floatingAddressEnv(address: string, device: string): string {
  return `# The balancer's floating address, kept up on its host by lb-address.unit (fleetts floating-address).
# Every host the balancer may run on must be on this address's L2 segment (docs/floating-address.md).
FLOATING_ADDRESS=${address}
FLOATING_INTERFACE=${device}
`;
}

/**
 * A shipped unit file made to use `shared` instead of the default shared path (identity for the
 * default), so that a test's cluster with its own --shared-path runs the same units.
 */
export function unitTextFor(text: string, shared: string): string {
  return shared === DEFAULT_SHARED_PATH ? text : text.split(DEFAULT_SHARED_PATH).join(shared);
}

function apacheConf(p: FarmPaths): string {
  return `# Apache for every web@N.unit instance (apache2 -DFOREGROUND -f ${p.apacheConf}).
# \${...} come from the unit's environment: FLEETTS_* from fleetd, WEB_PORT and WEB_RUN_DIR from
# web@.unit. Written by the fleetts demo; edit it and run \`fleetts restart web@1\` to apply.
LoadModule mpm_worker_module /usr/lib/apache2/modules/mod_mpm_worker.so
LoadModule authz_core_module /usr/lib/apache2/modules/mod_authz_core.so
LoadModule dir_module /usr/lib/apache2/modules/mod_dir.so
LoadModule mime_module /usr/lib/apache2/modules/mod_mime.so
LoadModule env_module /usr/lib/apache2/modules/mod_env.so
LoadModule headers_module /usr/lib/apache2/modules/mod_headers.so
LoadModule include_module /usr/lib/apache2/modules/mod_include.so

Listen \${FLEETTS_MACHINE_IP}:\${WEB_PORT}
ServerName \${FLEETTS_MACHINE_IP}
User www-data
Group www-data
PidFile \${WEB_RUN_DIR}/httpd.pid
DefaultRuntimeDir \${WEB_RUN_DIR}
Mutex file:\${WEB_RUN_DIR} default
# Through a pipe to the unit's output (fleetts journal web@N): /dev/stderr is a socket here.
ErrorLog "|/bin/cat"
LogLevel warn
TypesConfig /etc/mime.types

# nginx keeps connections to Apache open between requests (the upstream's keepalive): Apache must
# never close one that nginx may be about to reuse. So mpm_worker, whose threads close a connection
# only at KeepAliveTimeout (mpm_event also closes idle ones whenever its workers are all busy), and
# every child started at once and none ever stopped (a child that exits closes its connections);
# KeepAliveTimeout longer than nginx's keepalive_timeout (4 s), so that nginx closes idle ones
# first. An idle kept-alive connection holds a thread: 64 threads leave room beyond what nginx
# (2 workers × keepalive 16) can hold idle. Why, and the figures: docs/web-farm-load.md.
StartServers 2
ServerLimit 2
ThreadsPerChild 32
MaxRequestWorkers 64
MinSpareThreads 8
MaxSpareThreads 64
MaxConnectionsPerChild 0
KeepAlive On
KeepAliveTimeout 10
MaxKeepAliveRequests 0

DocumentRoot ${p.htdocs}
<Directory ${p.htdocs}>
    Options +Includes
    Require all granted
</Directory>
AddType text/html .shtml
AddOutputFilter INCLUDES .shtml
DirectoryIndex index.shtml
# The page (server-side includes) and a header name the instance and where it runs.
PassEnv FLEETTS_UNIT FLEETTS_MACHINE_ID FLEETTS_MACHINE_IP WEB_PORT WEB_RELEASE
Header always set X-Backend "\${FLEETTS_UNIT} \${FLEETTS_MACHINE_IP}:\${WEB_PORT}"
`;
}

const INDEX_PAGE = `<!doctype html>
<html><head><title>fleetts web farm</title></head>
<body>
<h1>Hello from <!--#echo var="FLEETTS_UNIT" --></h1>
<p>machine <!--#echo var="FLEETTS_MACHINE_ID" --> at <!--#echo var="FLEETTS_MACHINE_IP" -->:<!--#echo var="WEB_PORT" --></p>
<p>release <!--#echo var="WEB_RELEASE" --> (web@.unit's WEB_RELEASE: change it and run <code>fleetts rollout web@.unit</code>)</p>
<p>This page is on shared storage; every instance serves the same file.</p>
</body></html>
`;

function nginxConf(p: FarmPaths): string {
  return `# nginx for lb.unit, on every host. lb.unit copies this file to /run/fleetts/<machine>/lb/ and
# starts nginx with -p and -c there: the pid file, the error log and the temporary files below are
# relative to the prefix, and conf.d/ to this file's copy. The upstream "web" in conf.d/ is each
# host's own, rendered by \`fleetts upstream\` (lb-upstream.unit on that host; its first version is
# ${p.upstreamFile}).
user www-data;
# Two workers, each with room for about 500 proxied clients (a client and a backend connection
# each). Each worker keeps its own idle backend connections (keepalive in the upstream) and its own
# failure counts. docs/web-farm-load.md.
worker_processes 2;
worker_rlimit_nofile 4096;
pid nginx.pid;
error_log error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path client_body_temp;
    proxy_temp_path proxy_temp;
    fastcgi_temp_path fastcgi_temp;
    uwsgi_temp_path uwsgi_temp;
    scgi_temp_path scgi_temp;
    include conf.d/*.conf;
    server {
        listen ${LB_PORT};
        location / {
            proxy_pass http://web;
            # A backend that refuses, resets, times out or answers 502/503/504: the request goes to
            # the next one (at most 3 tries), and a server that failed 3 times is left out for
            # fail_timeout (the upstream's passive failure marking), long before its host is
            # declared dead. A request in flight to a host that died waits proxy_read_timeout.
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 3s;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            add_header X-Load-Balancer $server_addr always;
        }
    }
}
`;
}
