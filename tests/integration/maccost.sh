#!/bin/sh
# What a MAC's key derivation may cost: a PBMAC1 keyLength beyond the
# HMAC's block (which multiplies PBKDF2's work, RFC 8018 5.2) is refused
# with badAlg before anything is derived; the parts of one mail share a
# budget ([mail] mac_budget), so a mail full of costly parts costs at most
# that, the rest answered badAlg. Loopback only; every wait is bounded.
. "$TOP/tests/integration/lib.sh"
cd "$TMP" || exit 1
R="$CMPROUTER"

start_daemon d1 http --data-dir "$TMP/data" --http 127.0.0.1:0
check "cmprouterd starts" test -n "$PORT"
SECRET=$(sed -n 's/^secret=//p' data/demo-client.txt)
mkdir st
"$R" bench --write-requests st --transactions 3 --protection pbmac1 --ref demo --secret "pass:$SECRET" \
	>st.log 2>&1
check "three PBMAC1 requests written (PBKDF2-HMAC-SHA256, 10,000 iterations, keyLength 32)" \
	test "$(ls st | wc -l)" -eq 3

# ---- keyLength 127 (over HMAC-SHA256's 64-byte block): the same bytes but one ----
python3 - st/bench-000000.pki big.pki <<'EOF'
import sys
d = open(sys.argv[1], "rb").read()
old = b"\x02\x02\x27\x10\x02\x01\x20"      # iterationCount 10000, keyLength 32
assert d.count(old) == 1, "PBKDF2 parameters not found"
open(sys.argv[2], "wb").write(d.replace(old, b"\x02\x02\x27\x10\x02\x01\x7f"))
EOF
check "the request is patched to keyLength 127" test -s big.pki
curl -s -m 30 -H 'Content-Type: application/pkixcmp' --data-binary @big.pki \
	-o big.rsp "http://127.0.0.1:$PORT/.well-known/cmp"
"$R" dump big.rsp >big.txt 2>&1
check "keyLength over the HMAC's block: refused with badAlg" grep -q "badAlg" big.txt
curl -s -m 30 -H 'Content-Type: application/pkixcmp' --data-binary @st/bench-000000.pki \
	-o ok.rsp "http://127.0.0.1:$PORT/.well-known/cmp"
"$R" dump ok.rsp >ok.txt 2>&1
check "the same request unpatched is answered with a certificate (ip)" grep -q "body: ip" ok.txt

# ---- a mail's parts share one budget ----
kill $PID; wait $PID 2>/dev/null
sed -i 's/^\[mail\]$/[mail]\nmac_budget = 25000/' data/cmprouter.conf
python3 - <<'EOF' >m.eml
from email.message import EmailMessage
import os
m = EmailMessage()
m["From"], m["To"], m["Subject"], m["Message-ID"] = "site@site.test", "ca@cmp.test", "three", "<three@site.test>"
m.set_content("three requests")
for f in sorted(os.listdir("st")):
    m.add_attachment(open("st/" + f, "rb").read(), maintype="application", subtype="pkixcmp", filename=f)
print(m.as_string())
EOF
"$R" -c data/cmprouter.conf deliver <m.eml >deliver.out 2>deliver.err
check "cmprouter deliver takes the mail of three parts" test $? -eq 0
reply=$(ls data/mail-queue/*.msg 2>/dev/null | head -n 1)
check "a reply is queued" test -n "$reply"
check "mac_budget 25,000: two parts of 10,000 are answered with certificates" \
	test "$(grep -c '^Certificate issued' "$reply")" -eq 2
check "... the third is refused with badAlg, saying the budget is spent" \
	grep -q "^Error: rejection: badAlg (MAC check for client demo failed: the key derivations of this mail or batch have spent their budget)" "$reply"
sed -i 's/^mac_budget = 25000$/mac_budget = 10/' data/cmprouter.conf
"$R" -c data/cmprouter.conf deliver <m.eml >/dev/null 2>bad.err
check "mac_budget below 1000 is a configuration error (EX_CONFIG)" test $? -eq 78
check "... naming the directive" grep -q "mac_budget" bad.err
exit 0
