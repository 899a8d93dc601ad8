#!/bin/sh
# cmprouterd by e-mail ([mail], cmp-wire.md 3, RFC 9483 6.4.2) with a real
# MTA: OpenSMTPD from Debian, started here on 127.0.0.1, delivering to the
# Maildir the daemon reads and accepting its replies. (Debian 12's OpenSMTPD
# cannot do TLS with OpenSSL 3, upstream issue #1239, so STARTTLS and AUTH
# are checked against smtppeer.py, a relay that insists on both.) Requests from `openssl cmp -reqout`, answers taken
# out of the reply mails and accepted by `openssl cmp -rspin`; the delayed
# enrollment by mail through mailbridge.py; pipe delivery; the MTA down
# while replies wait; hostile mails. Waits are bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"
C="openssl cmp -config /dev/null -batch"
DEAD=127.0.0.1:9
DAEMON_ARGS="--http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0"

if [ "$(id -u)" != 0 ] || ! command -v smtpd >/dev/null; then
	not_ok "OpenSMTPD runs (needs root and the opensmtpd package from scripts/install-deps)"
	exit 0
fi

# ---- a real MTA on loopback ----
# OpenSMTPD's spool and control socket are system-wide: a running instance
# (the package's own) is stopped for the test
if pgrep -x smtpd >/dev/null; then smtpctl stop >/dev/null 2>&1 || pkill -x smtpd; sleep 1; fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
MP=$(free_port)
mkdir -p mta/ca/new mta/ca/cur mta/ca/tmp mta/site/new mta/site/cur mta/site/tmp
chown -R opensmtpd mta/ca mta/site
chmod 755 "$TMP" mta
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
	-addext "subjectAltName=IP:127.0.0.1,DNS:localhost" -keyout mta/tls.key -out mta/tls.pem 2>/dev/null
chmod 600 mta/tls.key
cat >mta/smtpd.conf <<EOF
table vca { "@cmp.test" = "opensmtpd" }
table vsite { "@site.test" = "opensmtpd" }
listen on 127.0.0.1 port $MP
action "ca" maildir "$TMP/mta/ca" virtual <vca>
action "site" maildir "$TMP/mta/site" virtual <vsite>
match from any for domain "cmp.test" action "ca"
match from any for domain "site.test" action "site"
EOF
start_mta() {
	smtpd -d -f "$TMP/mta/smtpd.conf" >>mta.log 2>&1 &
	MTA=$!
	PIDS="$PIDS $MTA"
	_i=0
	while [ $_i -lt 50 ] && ! python3 -c "import socket; socket.create_connection(('127.0.0.1', $MP), 1)" 2>/dev/null; do
		sleep 0.1; _i=$((_i + 1))
	done
}
stop_mta() { kill -TERM $MTA 2>/dev/null; _i=0; while [ $_i -lt 50 ] && kill -0 $MTA 2>/dev/null; do sleep 0.1; _i=$((_i + 1)); done; }
start_mta
check "OpenSMTPD runs on 127.0.0.1" \
	python3 -c "import socket; socket.create_connection(('127.0.0.1', $MP), 1)"

# ---- the daemon: its Maildir is the one the MTA delivers ca@cmp.test to ----
start_daemon d0 http --data-dir "$TMP/data" $DAEMON_ARGS
check "the embedded default has a [mail] group" grep -q '^\[mail\]' data/cmprouter.conf
kill $PID; wait $PID 2>/dev/null
sed -i -e "s|^maildir = Maildir|maildir = $TMP/mta/ca\nsmtp = 127.0.0.1:$MP\nretry_min = 1\nrescan = 1|" \
	-e 's|^from = cmprouter@localhost|from = ca@cmp.test|' -e 's/^data_dir = \.$/data_dir = .\ncheck_after = 1/' \
	data/cmprouter.conf
start_daemon d1 http -c data/cmprouter.conf $DAEMON_ARGS
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
MAC="-ref demo -secret pass:$SECRET -recipient /CN=cmprouter_demo_issuing_CA"
SITE=mta/site

# sendreq NAME [PORT]: mails NAME.req to ca@cmp.test as an application/pkixcmp part
sendreq() {
	python3 - "$1" "${2:-$MP}" <<'EOF'
import smtplib, sys
from email.message import EmailMessage
name, port = sys.argv[1], int(sys.argv[2])
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "enrol " + name, "<%s@site.test>" % name
m.set_content("please enrol")
m.add_attachment(open(name + ".req", "rb").read(), maintype="application", subtype="pkixcmp", filename=name + ".pki")
with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
    s.send_message(m)
EOF
}
# reply_for ID [TENTHS]: waits for the reply mail In-Reply-To <ID@site.test>;
# its pkixcmp part into ID.rsp, the whole mail into ID.mail
reply_for() {
	python3 - "$1" "$SITE" "${2:-300}" <<'EOF'
import email, email.policy, glob, sys, time
want, site, tenths = "<%s@site.test>" % sys.argv[1], sys.argv[2], int(sys.argv[3])
for _ in range(tenths):
    for f in glob.glob(site + "/new/*"):
        raw = open(f, "rb").read()
        m = email.message_from_bytes(raw, policy=email.policy.default)
        if (m.get("In-Reply-To") or "").strip() != want:
            continue
        open(sys.argv[1] + ".mail", "wb").write(raw)
        for p in m.walk():
            if p.get_content_type() == "application/pkixcmp":
                open(sys.argv[1] + ".rsp", "wb").write(p.get_payload(decode=True))
        sys.exit(0)
    time.sleep(0.1)
sys.exit(1)
EOF
}

# ---- a mailed request gets a reply mail carrying the certificate ----
mkreq m1
sendreq m1
reply_for m1
check "a mailed request (application/pkixcmp part) gets a reply mail through the MTA" test -s m1.mail
check "openssl cmp -rspin accepts the reply's CMP part; the certificate verifies" accepted m1 m1.rsp
check "the reply threads: In-Reply-To, References, Subject Re:, From the CA, To the site" sh -c \
	"grep -q '^In-Reply-To: <m1@site.test>' m1.mail && grep -q '^References: .*<m1@site.test>' m1.mail \
	 && grep -q '^Subject: Re: enrol m1' m1.mail && grep -q '^From: ca@cmp.test' m1.mail \
	 && grep -q '^To: site@site.test' m1.mail && grep -q '^Message-I[dD]: <cmprouter\.' m1.mail"
check "the reply has a text part a person can read (subject and serial)" \
	grep -q "Certificate issued: subject /CN=m1, serial" m1.mail
check "the answer part is application/pkixcmp, base64, named m1.rsp.pki" sh -c \
	"grep -q 'Content-Type: application/pkixcmp; name=m1.rsp.pki' m1.mail && grep -q 'filename=m1.rsp.pki' m1.mail"
check "the request mail is marked done in the Maildir (cur/, flag S)" \
	sh -c "ls mta/ca/cur | grep -q ':2,S\$' && test -z \"\$(ls mta/ca/new)\""

# ---- pipe delivery: cmprouter deliver ----
mkreq p1
python3 - <<'EOF' >p1.eml
from email.message import EmailMessage
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "piped", "<p1@site.test>"
m.set_content("by pipe")
m.add_attachment(open("p1.req", "rb").read(), maintype="application", subtype="octet-stream", filename="p1.pki")
print(m.as_string())
EOF
"$R" -c data/cmprouter.conf deliver <p1.eml 2>deliver.err
check "cmprouter deliver exits 0 once the answer is queued (.pki sent as octet-stream)" test $? -eq 0
reply_for p1
check "... and the daemon's sender mails the reply, which openssl cmp accepts" accepted p1 p1.rsp
"$R" -c /nonexistent.conf deliver <p1.eml 2>/dev/null
check "deliver with a configuration that cannot be read exits 78 (EX_CONFIG)" test $? -eq 78
chmod 000 data/cmprouter.db 2>/dev/null; mv data/mail-queue data/mail-queue.away; : >data/mail-queue
"$R" -c data/cmprouter.conf deliver <p1.eml 2>/dev/null
rc=$?
rm -f data/mail-queue; mv data/mail-queue.away data/mail-queue; chmod 644 data/cmprouter.db
check "deliver exits 75 (EX_TEMPFAIL) when the answer cannot be queued, so the MTA retries" test $rc -eq 75

# ---- STARTTLS and AUTH ----
python3 "$TOP/tests/integration/smtppeer.py" mta/tls.pem mta/tls.key cmp mail-secret "$TMP/mta/site" >peer.log 2>&1 &
PIDS="$PIDS $!"
i=0; while [ $i -lt 50 ] && ! grep -q '^port' peer.log; do sleep 0.1; i=$((i + 1)); done
SPORT=$(sed -n 's/^port //p' peer.log)
kill $PID; wait $PID 2>/dev/null
cp data/cmprouter.conf data/plain.conf
sed -i -e "s|^smtp = .*|smtp = 127.0.0.1:$SPORT\nsmtp_tls = required\nsmtp_ca = $TMP/mta/tls.pem\nsmtp_user = cmp\nsmtp_secret = pass:mail-secret|" \
	data/cmprouter.conf
start_daemon d2 http -c data/cmprouter.conf $DAEMON_ARGS
mkreq t1
sendreq t1
reply_for t1
check "replies go out over STARTTLS with AUTH when the relay wants them" accepted t1 t1.rsp
check "... the relay saw TLS 1.2+ and the right user (AUTH PLAIN) before MAIL FROM" \
	grep -q "delivered tls=TLSv1.[23] user=cmp mech=PLAIN from=ca@cmp.test to=site@site.test" peer.log
python3 "$TOP/tests/integration/smtppeer.py" mta/tls.pem mta/tls.key cmp mail-secret "$TMP/mta/site" login >peer2.log 2>&1 &
PIDS="$PIDS $!"
i=0; while [ $i -lt 50 ] && ! grep -q '^port' peer2.log; do sleep 0.1; i=$((i + 1)); done
kill $PID; wait $PID 2>/dev/null
sed -i "s|^smtp = 127.0.0.1:$SPORT|smtp = 127.0.0.1:$(sed -n 's/^port //p' peer2.log)|" data/cmprouter.conf
start_daemon d2l http -c data/cmprouter.conf $DAEMON_ARGS
mkreq t3
sendreq t3
reply_for t3
check "a relay offering only AUTH LOGIN gets LOGIN" sh -c \
	"grep -q 'user=cmp mech=LOGIN' peer2.log && $C -cmd ir $MAC -newkey t3.key -subject /CN=t3 -implicit_confirm -rspin t3.rsp -certout t3.pem"
kill $PID; wait $PID 2>/dev/null
sed -i "s|^smtp_secret = .*|smtp_secret = pass:wrong|" data/cmprouter.conf
start_daemon d2b http -c data/cmprouter.conf $DAEMON_ARGS
mkreq t2
sendreq t2
i=0
while [ $i -lt 600 ] && ! cat data/mail-queue/dead/*.reason 2>/dev/null | grep -q 535; do sleep 0.1; i=$((i + 1)); done
check "wrong credentials: 535 is a permanent failure, the reply goes to queue/dead with a reason" \
	sh -c "ls data/mail-queue/dead/*.reason >/dev/null 2>&1 && grep -q 535 data/mail-queue/dead/*.reason \
	       || { ls -la data/mail-queue data/mail-queue/dead; tail -n 5 d2b.err; exit 1; }"
kill $PID; wait $PID 2>/dev/null
cp data/plain.conf data/cmprouter.conf
start_daemon d2 http -c data/cmprouter.conf $DAEMON_ARGS

# ---- the MTA down while replies wait; a daemon restart in between ----
stop_mta
mkreq q1
python3 - <<'EOF' >"mta/ca/tmp/1700000000.q1.test"
from email.message import EmailMessage
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "queued", "<q1@site.test>"
m.set_content("x")
m.add_attachment(open("q1.req", "rb").read(), maintype="application", subtype="pkixcmp", filename="q1.pki")
print(m.as_string())
EOF
mv mta/ca/tmp/1700000000.q1.test mta/ca/new/     # Maildir: written in tmp/, then moved
i=0; while [ $i -lt 600 ] && [ -z "$(ls data/mail-queue/*.msg 2>/dev/null)" ]; do sleep 0.1; i=$((i + 1)); done
check "with the MTA down the reply waits in the queue" \
	sh -c "ls data/mail-queue/*.msg >/dev/null 2>&1 || { ls -la data/mail-queue; exit 1; }"
check "... and its retries are logged" wait_grep d2.err 'not sent'
kill -9 $PID; wait $PID 2>/dev/null
start_daemon d3 http -c data/cmprouter.conf $DAEMON_ARGS
sleep 1
start_mta
reply_for q1 400
check "after kill -9, a restart and the MTA's return the reply goes out, accepted" accepted q1 q1.rsp
check "... sent once: the queue is empty, the entry is in queue/sent" sh -c \
	"test -z \"\$(ls data/mail-queue/*.msg 2>/dev/null)\" && ls data/mail-queue/sent | grep -q 1700000000.q1"

# ---- hostile mail: each gets an explanatory reply or a logged drop, never a hang ----
hostile() {     # NAME PYTHON-BODY-WRITER: writes the mail straight into the Maildir
	python3 -c "$2" >"mta/ca/tmp/$1" && mv "mta/ca/tmp/$1" "mta/ca/new/1700000001.$1.test"
}
hostile nocmp 'print("From: site@site.test\nTo: ca@cmp.test\nSubject: hello\nMessage-ID: <nocmp@site.test>\n\njust text")'
hostile badb64 'print("From: site@site.test\nSubject: b\nMessage-ID: <badb64@site.test>\nMIME-Version: 1.0\nContent-Type: application/pkixcmp; name=x.pki\nContent-Transfer-Encoding: base64\n\n!!!!****not base64####\n")'
hostile notcmp 'import base64; print("From: site@site.test\nSubject: n\nMessage-ID: <notcmp@site.test>\nMIME-Version: 1.0\nContent-Type: application/octet-stream\nContent-Disposition: attachment; filename=notcmp.pki\nContent-Transfer-Encoding: base64\n\n" + base64.b64encode(b"this is not DER at all").decode())'
hostile huge 'import sys; sys.stdout.write("From: site@site.test\nSubject: big\nMessage-ID: <huge@site.test>\n\n"); [sys.stdout.write("x" * 1023 + "\n") for _ in range(50 * 1024)]'
hostile parts 'import sys; sys.stdout.write("From: site@site.test\nSubject: parts\nMessage-ID: <parts@site.test>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b\n\n"); [sys.stdout.write("--b\nContent-Type: text/plain\n\n%d\n" % i) for i in range(10000)]; sys.stdout.write("--b--\n")'
hostile deep 'import sys; sys.stdout.write("From: site@site.test\nSubject: deep\nMessage-ID: <deep@site.test>\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=b0\n\n"); [sys.stdout.write("--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1)) for i in range(100)]'
hostile inject 'print("From: site@site.test\nSubject: =?utf-8?q?hi=0D=0ABcc:_victim@evil.test?=\nMessage-ID: <inject@site.test>\n\nx")'
hostile nofrom 'print("From: \"x\" <not an address>\nSubject: s\n\nx")'
for n in nocmp badb64 notcmp huge parts deep inject; do reply_for $n 300; done
check "no CMP part: an explanatory reply" grep -q "no CMP message in the mail" nocmp.mail
check "broken base64: a reply saying the part is not a DER PKIMessage" grep -q "Not processed: not a DER PKIMessage" badb64.mail
check "a .pki file that is not CMP: explained the same way" grep -q "Not processed: not a DER PKIMessage" notcmp.mail
check "a 50 MiB mail: answered from its head, 'larger than' (not processed)" grep -q "larger than" huge.mail
check "10 000 parts: answered, the limit named" grep -q "MIME parts\|multipart" parts.mail
check "100 levels of nesting: answered, the limit named" grep -q "multipart\|nested" deep.mail
check "header injection in Subject: no Bcc header, the subject kept on one line" sh -c \
	"! grep -qi '^Bcc:' inject.mail && grep -q '^Subject: Re: hi' inject.mail"
check "no Bcc recipient got anything" sh -c "! grep -rl 'victim@evil' mta/site/new >/dev/null 2>&1 || ! grep -l '^To: victim' mta/site/new/* >/dev/null 2>&1"
check "a mail without a usable sender is dropped and logged" grep -q "dropped: no usable From" d3.err
check "the daemon is alive and all hostile mails are done" sh -c \
	"kill -0 $PID && test -z \"\$(ls mta/ca/new)\""

# ---- sendmail instead of SMTP; allow_domains ----
kill $PID; wait $PID 2>/dev/null
cp data/cmprouter.conf data/smtp.conf
sed -i -e "s|^smtp = .*|sendmail = /usr/sbin/sendmail|" -e 's|^\[mail\]$|[mail]\nallow_domains = site.test, example.org|' \
	data/cmprouter.conf
start_daemon d3s http -c data/cmprouter.conf $DAEMON_ARGS
mkreq s1
sendreq s1
reply_for s1
check "with sendmail = /usr/sbin/sendmail the reply goes out through sendmail -t -i, accepted" accepted s1 s1.rsp
hostile evil 'print("From: evil@other.test\nSubject: x\nMessage-ID: <evil@other.test>\n\nx")'
i=0; while [ $i -lt 100 ] && ! grep -q "not in allow_domains" d3s.err; do sleep 0.1; i=$((i + 1)); done
check "a sender outside allow_domains is dropped before processing, logged, not answered" sh -c \
	"grep -q 'dropped: sender evil@other.test is not in allow_domains' d3s.err && ! grep -rq 'evil@other.test' mta/site/new"
kill $PID; wait $PID 2>/dev/null
cp data/smtp.conf data/cmprouter.conf

# ---- the delayed enrollment by mail (waiting, approval, pollReq, certConf) ----
sed -i "s|^\[mail\]\$|[mail]\nlabel = manual|" data/cmprouter.conf
start_daemon d4 http -c data/cmprouter.conf $DAEMON_ARGS
python3 "$TOP/tests/integration/mailbridge.py" $MP site@site.test ca@cmp.test "$TMP/mta/site" mb 90 >bridge.log 2>&1 &
BR=$!
PIDS="$PIDS $BR"
i=0; while [ $i -lt 50 ] && ! grep -q '^port' bridge.log; do sleep 0.1; i=$((i + 1)); done
BPORT=$(sed -n 's/^port //p' bridge.log)
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out manual.key 2>/dev/null
$C -server 127.0.0.1:$BPORT/.well-known/cmp $MAC -cmd cr -newkey manual.key \
	-subject /CN=mail-manual -certout manual.pem -total_timeout 150 >manual.log 2>&1 &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "a mailed cr for a profile needing approval waits for the operator" test -n "$tid"
sleep 2
check "approve from the CLI" "$R" -c data/cmprouter.conf approve "$tid"
i=0
while [ $i -lt 600 ] && kill -0 $CL 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
check "the site gets its certificate by mail (waiting, pollReq, cert, certConf, pkiConf)" \
	sh -c "test -s manual.pem && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem manual.pem"
check "... each message crossed the MTA as a mail" sh -c "test \$(grep -c 'bytes back' bridge.log) -ge 4"
check "... and a waiting answer says so to a person" sh -c "grep -q \"Waiting\" bridge.log || grep -rq 'Waiting: ' mta/site/cur"
APORT=$(sed -n 's/^cmprouterd: admin listening on port //p' d4.out)
check "metrics count mail requests" sh -c \
	"curl -s http://127.0.0.1:$APORT/metrics | grep -q 'medium=\"mail\",outcome=\"answered\"} [1-9]'"
kill $BR 2>/dev/null

# ---- the EE client by mail: cmprouter ... --server mailto: (SMTP out, Maildir in) ----
EE="--smtp 127.0.0.1:$MP --from site@site.test --maildir $TMP/mta/site --timeout 60"
SEC=$(sed -n 's/^secret=//p' data/demo-client.txt)
"$R" ir --server mailto:ca@cmp.test $EE --ref demo --secret pass:$SEC --trusted data/ca/root.pem \
	--newkey ec:P-256 --subject /CN=ee-mail --out ee-mail.pem --max-wait 1 --total-timeout 120 2>ee-mail.err &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "cmprouter ir --server mailto: mails the request; it waits for approval" test -n "$tid"
"$R" -c data/cmprouter.conf approve "$tid" >/dev/null 2>&1
wait $CL
check "... approved, the client polls by mail and gets the certificate; exit 0" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee-mail.pem"
check "... its messages went as mails with application/pkixcmp parts, threaded" sh -c \
	"grep -lq 'Subject: CMP request cmprouter-' mta/ca/cur/* && grep -q 'confirmed' ee-mail.err"
"$R" genm --server mailto:ca@cmp.test $EE --ref demo --secret pass:$SEC --trusted data/ca/root.pem \
	--infotype caCerts --out ee-ca.pem 2>ee-genm.err
check "genm caCerts by mail exits 0 with the CA certificates" sh -c "test $? -eq 0 && test \$(grep -c BEGIN ee-ca.pem) -eq 2"
# kur and p10cr by mail (this [mail] group's label needs approval for each)
approve_next() { _t=$(pending_tid data/cmprouter.conf); [ -n "$_t" ] && "$R" -c data/cmprouter.conf approve "$_t" >/dev/null 2>&1; }
"$R" kur --server mailto:ca@cmp.test $EE --oldcert ee-mail.pem --key ee-mail.key --trusted data/ca/root.pem \
	--newkey ec:P-256 --out ee-mail2.pem --max-wait 1 --total-timeout 120 2>ee-kur.err &
CL=$!
approve_next
wait $CL
check "kur by mail (signed with the old key, approved, polled) exits 0; the new certificate verifies" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee-mail2.pem"
"$R" p10cr --server mailto:ca@cmp.test $EE --ref demo --secret pass:$SEC --trusted data/ca/root.pem \
	--newkey rsa:2048 --subject /CN=ee-mail-p10 --out ee-p10.pem --max-wait 1 --total-timeout 120 2>ee-p10.err &
CL=$!
approve_next
wait $CL
check "p10cr by mail exits 0; the certificate verifies" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ee-p10.pem"
"$R" rr --server mailto:ca@cmp.test $EE --oldcert ee-mail2.pem --key ee-mail2.key --trusted data/ca/root.pem 2>ee-rr.err
check "rr by mail (signed with the certificate's key) exits 0" test $? -eq 0
# ---- an RA whose upstream CA is reached by mail (route upstream = mailto:) ----
mkdir -p mta/ra/new mta/ra/cur mta/ra/tmp && chown -R opensmtpd mta/ra
sed -i 's|^table vsite { "@site.test" = "opensmtpd" }$|table vsite { "@site.test" = "opensmtpd" }\ntable vra { "@ra.test" = "opensmtpd" }|; s|^match from any for domain "site.test" action "site"$|match from any for domain "site.test" action "site"\naction "ra" maildir "'"$TMP"'/mta/ra" virtual <vra>\nmatch from any for domain "ra.test" action "ra"|' mta/smtpd.conf
CAPID=$PID
stop_mta; start_mta
start_daemon ra0 http --data-dir "$TMP/ra" --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
kill $PID; wait $PID 2>/dev/null
sed -i "s/^secret = pass:.*/secret = pass:$SEC/" ra/cmprouter.conf
cat >>ra/cmprouter.conf <<EOF

[route by-mail]
upstream = mailto:ca@cmp.test
smtp = 127.0.0.1:$MP
from = ra@ra.test
maildir = $TMP/mta/ra
protection = reprotect
ra_reference = demo
ra_secret = pass:$SEC
check_after = 1
followup_wait = 30
EOF
start_daemon ra1 http -c ra/cmprouter.conf --http 127.0.0.1:0 --tcp 127.0.0.1:0 --admin 127.0.0.1:0
RAP=$PORT
"$R" ir --server "http://127.0.0.1:$RAP/.well-known/cmp" --ref demo --secret pass:$SEC --trusted data/ca/root.pem \
	--newkey ec:P-256 --subject /CN=ra-mail --out ra-mail.pem --total-timeout 150 --max-wait 1 2>ra-mail.err &
CL=$!
tid=$(pending_tid data/cmprouter.conf)
check "an RA forwards an HTTP client's request to its upstream CA by mail (it waits there for approval)" test -n "$tid"
"$R" -c data/cmprouter.conf approve "$tid" >/dev/null 2>&1
wait $CL
check "... the RA polls the CA by mail itself; the client's poll gets the certificate, certConf by mail" sh -c \
	"test $? -eq 0 && openssl verify -CAfile data/ca/root.pem -untrusted data/ca/issuing.pem ra-mail.pem \
	 && grep -q 'route by-mail tid=.*the upstream says waiting; polling it' ra1.err && grep -q confirmed ra-mail.err"
kill $PID; wait $PID 2>/dev/null
PID=$CAPID

"$R" genm --server mailto:ca@cmp.test --smtp 127.0.0.1:$MP --from site@site.test --maildir $TMP/mta/site \
	--timeout 2 --ref demo --secret pass:$SEC 2>/dev/null --server mailto:nobody@site.test
check "no reply within --timeout: transport error, exit 3" test $? -eq 3
kill $PID; wait $PID 2>/dev/null
stop_mta
check "no sanitizer report from any daemon (leaks, overflows, UB)" \
	sh -c "! cat d0.err d1.err d2.err d2b.err d2l.err d3.err d3s.err d4.err ra1.err deliver.err | grep -q 'Sanitizer\|runtime error'"
