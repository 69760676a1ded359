#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
#   make_test_certs.sh DIR
#
# Makes the certificates the TLS tests use, with openssl, into DIR (made
# anew each run, so the tests run from a plain clone): a CA (ca) and a
# second one nobody trusts (other_ca); server certificates for localhost,
# 127.0.0.1 and server.test (server), for the same names from other_ca
# (other_server), for wrong.test only (wrong), and one that expired in 2021
# (expired); a client certificate (client: DNS client.test, URI
# spiffe://cgrpc.test/client).  Each X.pem has its key in X.key.
set -euo pipefail
d=$1
mkdir -p "$d"
cd "$d"
q() { "$@" >/dev/null 2>&1; }
mkca() { # name
  q openssl req -x509 -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.pem" \
    -days 3650 -subj "/CN=cgrpc test $1" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
}
mkleaf() { # name ca san [days]
  q openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$1.csr" -subj "/CN=$1/O=cgrpc tests"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" > "$1.ext"
  q openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" -CAcreateserial \
    -out "$1.pem" -days "${4:-3650}" -extfile "$1.ext"
  rm -f "$1.csr" "$1.ext"
}
mkca ca
mkca other_ca
mkleaf server ca "DNS:localhost,IP:127.0.0.1,DNS:server.test"
mkleaf other_server other_ca "DNS:localhost,IP:127.0.0.1"
mkleaf wrong ca "DNS:wrong.test"
mkleaf client ca "DNS:client.test,URI:spiffe://cgrpc.test/client"
# An expired server certificate: openssl ca takes explicit dates.
mkdir -p expired_ca/newcerts
: > expired_ca/index.txt
echo 01 > expired_ca/serial
cat > expired_ca/ca.cnf <<CNF
[ca]
default_ca = d
[d]
dir = expired_ca
database = expired_ca/index.txt
new_certs_dir = expired_ca/newcerts
serial = expired_ca/serial
default_md = sha256
policy = p
copy_extensions = copy
[p]
commonName = supplied
CNF
q openssl req -newkey rsa:2048 -nodes -keyout expired.key -out expired.csr -subj "/CN=expired" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
q openssl ca -batch -config expired_ca/ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr \
  -out expired.pem -startdate 20200101000000Z -enddate 20210101000000Z -notext
rm -rf expired.csr expired_ca ca.srl other_ca.srl
