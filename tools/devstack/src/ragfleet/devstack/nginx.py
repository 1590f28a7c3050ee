"""The NGINX front of the one-machine stack, with the same rules as the Kubernetes ingress:
cookie affinity over the gateway replicas, WebSocket upgrade, long timeouts and no buffering
for SSE."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

AFFINITY_COOKIE = "ragfleet_affinity"
AFFINITY_MAX_AGE_S = 172800

# Open-source NGINX has no "sticky cookie"; this does what ingress-nginx's cookie affinity does:
# a request without the cookie is hashed on a fresh random id, and that id is handed back as the
# cookie, so the client's next requests hash to the same replica. Consistent hashing keeps other
# clients where they are when a replica joins or leaves.
NGINX_CONF = """\
worker_processes 1;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {run}/tmp/body;
    proxy_temp_path {run}/tmp/proxy;
    fastcgi_temp_path {run}/tmp/fastcgi;
    uwsgi_temp_path {run}/tmp/uwsgi;
    scgi_temp_path {run}/tmp/scgi;
    client_max_body_size {max_body};

    map $http_upgrade $connection_upgrade {{ default upgrade; '' ''; }}
    map $cookie_{cookie} $affinity_key {{ '' $request_id; default $cookie_{cookie}; }}
    map $cookie_{cookie} $affinity_set_cookie {{
        '' "{cookie}=$request_id; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax";
        default '';
    }}

    # Compression happens here, in C, rather than in the gateways (see RAGFLEET_GATEWAY_GZIP_MIN_BYTES);
    # level 1 keeps most of the saving for a fraction of the CPU. Event streams are never compressed.
    gzip on;
    gzip_comp_level 1;
    gzip_min_length 1400;
    gzip_proxied any;
    gzip_vary on;
    gzip_types application/json;

    upstream gateway {{
        hash $affinity_key consistent;
{servers}
        keepalive 64;
    }}

    server {{
        listen {host}:{port};
        # Like the ingress: metrics are for the monitoring network (each service's own port, or
        # its main port in this stack), never for the public front door.
        location = /metrics {{
            default_type application/json;
            return 404 '{{"error":{{"code":"not_found","message":"no route GET /metrics","request_id":"$request_id"}}}}';
        }}
        location / {{
            proxy_pass http://gateway;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
            proxy_next_upstream error timeout http_502 http_503;
            add_header Set-Cookie $affinity_set_cookie always;
        }}
    }}
}}
"""


def find_nginx() -> str | None:
    return shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def render_conf(
    run_dir: Path, *, host: str, port: int, gateway_ports: Sequence[int], max_body: str = "64m"
) -> Path:
    run_dir = run_dir.resolve()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=5s;" for p in gateway_ports)
    conf = run_dir / "nginx.conf"
    conf.write_text(
        NGINX_CONF.format(
            run=run_dir,
            host=host,
            port=port,
            servers=servers,
            cookie=AFFINITY_COOKIE,
            max_age=AFFINITY_MAX_AGE_S,
            max_body=max_body,
        )
    )
    return conf


def nginx_argv(nginx: str, run_dir: Path) -> list[str]:
    run_dir = run_dir.resolve()
    return [nginx, "-p", str(run_dir), "-c", str(run_dir / "nginx.conf"), "-g", "daemon off;"]
