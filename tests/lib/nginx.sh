# SPDX-License-Identifier: MIT
# Sourced by the fleet tests and the network benchmark: Debian's nginx on
# loopback, serving a directory over HTTP and HTTPS with a test CA made
# here, logging what each request cost, and taking status reports.
#
#   make_pki DIR            CA, server certificate for 127.0.0.1, a client
#                           certificate, and a second CA that vouches for
#                           nothing nginx serves: DIR/{ca,other-ca,server,client}.{pem,key}
#   nginx_up DIR ROOT PKI   starts nginx; sets NGINX_HTTP, NGINX_HTTPS (base
#                           URLs) and NGINX_MTLS (HTTPS that requires a
#                           client certificate from the test CA); ROOT is
#                           served at /; POST /report bodies go to
#                           DIR/reports.log, one per line; every request
#                           to DIR/access.log as
#                           "status method uri range body_bytes bytes_sent";
#                           /to-http/X redirects (302) to NGINX_HTTP/X
#   nginx_down              stops it (also safe when it never started)
#   free_port               prints a free loopback TCP port
# Every wait is bounded; only 127.0.0.1 is used.

NGINX_PID_FILE=""

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

make_pki() {
	local d=$1 ca
	mkdir -p "$d"
	for ca in ca other-ca; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
			-subj "/CN=Tandem test $ca" -keyout "$d/$ca.key" -out "$d/$ca.pem" 2>/dev/null
	done
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
		-keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
	openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=device-0001" \
		-keyout "$d/client.key" -out "$d/client.csr" 2>/dev/null
	printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
	openssl x509 -req -in "$d/client.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/client.ext" -out "$d/client.pem" 2>/dev/null
	[ -s "$d/server.pem" ] && [ -s "$d/client.pem" ]
}

nginx_up() {
	local d=$1 root=$2 pki=$3 http https mtls i
	mkdir -p "$d/tmp"
	http=$(free_port)
	https=$(free_port)
	mtls=$(free_port)
	local user=""
	# as root the workers would run as nobody, who cannot read a test's
	# private temporary directory
	[ "$(id -u)" -ne 0 ] || user="user root;"
	cat >"$d/nginx.conf" <<EOF
$user
daemon on;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 64; }
http {
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	types { application/json json; application/octet-stream tnd; }
	log_format cost '\$status \$request_method \$uri "\$http_range" \$body_bytes_sent \$bytes_sent \$request_length';
	log_format body escape=none '\$request_body';
	access_log $d/access.log cost;
	sendfile on;
	etag on;
	server {
		listen 127.0.0.1:$http;
		listen 127.0.0.1:$https ssl;
		ssl_certificate $pki/server.pem;
		ssl_certificate_key $pki/server.key;
		root $root;
		# Reports: proxied to a sink so that nginx reads the body and can log it.
		location = /report {
			access_log $d/reports.log body;
			access_log $d/access.log cost;
			proxy_pass http://127.0.0.1:$http/report-sink;
		}
		location = /report-sink { access_log off; return 204; }
		# A redirect that leaves HTTPS for plain HTTP (server.url_policy)
		location /to-http/ {
			rewrite ^/to-http/(.*)\$ http://127.0.0.1:$http/\$1 redirect;
		}
	}
	server {
		listen 127.0.0.1:$mtls ssl;
		ssl_certificate $pki/server.pem;
		ssl_certificate_key $pki/server.key;
		ssl_client_certificate $pki/ca.pem;
		ssl_verify_client on;
		root $root;
	}
}
EOF
	: >"$d/access.log"
	: >"$d/reports.log"
	NGINX_PID_FILE=$d/nginx.pid
	timeout 10 nginx -c "$d/nginx.conf" -p "$d" 2>"$d/start.err" ||
		{ echo "nginx did not start: $(cat "$d/start.err" "$d/error.log" 2>/dev/null)" >&2; return 1; }
	for i in $(seq 50); do
		curl -s -o /dev/null "http://127.0.0.1:$http/" && break
		sleep 0.1
	done
	NGINX_HTTP=http://127.0.0.1:$http
	NGINX_HTTPS=https://127.0.0.1:$https
	NGINX_MTLS=https://127.0.0.1:$mtls
	: >"$d/access.log"
}

nginx_down() {
	local pid
	[ -n "$NGINX_PID_FILE" ] && [ -f "$NGINX_PID_FILE" ] || return 0
	pid=$(cat "$NGINX_PID_FILE")
	kill "$pid" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$pid" 2>/dev/null || true
	NGINX_PID_FILE=""
}
