/*
 * A CMP client built on Bouncy Castle (Debian's libbcpkix-java 1.72), used by
 * tests/integration/bc.sh as a peer we did not write: its messages are encoded,
 * protected and parsed by another implementation than cmprouter's own.
 *
 *   java BcCmpClient ir|cr|kur|rr --url URL --trusted ROOT.pem --recipient DN
 *        [--ref REF --secret SECRET --mac pbm|pbmac1 --iterations N]
 *        [--cert CERT.pem --key KEY.pem]            (signature protection)
 *        [--subject DN] [--newkey ec|rsa|central|central-empty] [--profile NAME]
 *        [--out CERT.pem] [--key-out KEY.pem] [--revoke CERT.pem] [--reason N]
 *        [--save PREFIX]   (writes PREFIX-reqN.der and PREFIX-ansN.der)
 *
 * It prints what it checked, one line each ("answer protection: ...",
 * "status: ...", "confirmed"). Exit 0: done and every check passed; 2: the
 * server refused (status and failInfo printed); 1: an answer failed a check
 * or another error; 3: usage.
 *
 * Written for this project's tests; not derived from another program's code.
 */
import java.io.ByteArrayOutputStream;
import java.io.FileReader;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.StringWriter;
import java.math.BigInteger;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.attribute.PosixFilePermissions;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.PublicKey;
import java.security.SecureRandom;
import java.security.Security;
import java.security.Signature;
import java.security.cert.CertPathBuilder;
import java.security.cert.CertStore;
import java.security.cert.CollectionCertStoreParameters;
import java.security.cert.PKIXBuilderParameters;
import java.security.cert.TrustAnchor;
import java.security.cert.X509CertSelector;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Date;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.bouncycastle.asn1.ASN1Encodable;
import org.bouncycastle.asn1.ASN1Integer;
import org.bouncycastle.asn1.ASN1ObjectIdentifier;
import org.bouncycastle.asn1.ASN1Sequence;
import org.bouncycastle.asn1.DEROctetString;
import org.bouncycastle.asn1.DERSequence;
import org.bouncycastle.asn1.DERUTF8String;
import org.bouncycastle.asn1.cmp.CMPCertificate;
import org.bouncycastle.asn1.cmp.CertRepMessage;
import org.bouncycastle.asn1.cmp.CertResponse;
import org.bouncycastle.asn1.cmp.CertifiedKeyPair;
import org.bouncycastle.asn1.cmp.ErrorMsgContent;
import org.bouncycastle.asn1.cmp.InfoTypeAndValue;
import org.bouncycastle.asn1.cmp.PBMParameter;
import org.bouncycastle.asn1.cmp.PKIBody;
import org.bouncycastle.asn1.cmp.PKIFreeText;
import org.bouncycastle.asn1.cmp.PKIHeader;
import org.bouncycastle.asn1.cmp.PKIMessage;
import org.bouncycastle.asn1.cmp.PKIStatusInfo;
import org.bouncycastle.asn1.cmp.RevDetails;
import org.bouncycastle.asn1.cmp.RevRepContent;
import org.bouncycastle.asn1.cmp.RevReqContent;
import org.bouncycastle.asn1.cms.CMSObjectIdentifiers;
import org.bouncycastle.asn1.cms.ContentInfo;
import org.bouncycastle.asn1.cms.EnvelopedData;
import org.bouncycastle.asn1.crmf.CertId;
import org.bouncycastle.asn1.crmf.CertReqMessages;
import org.bouncycastle.asn1.crmf.CertTemplateBuilder;
import org.bouncycastle.asn1.crmf.EncryptedKey;
import org.bouncycastle.asn1.nist.NISTObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PBKDF2Params;
import org.bouncycastle.asn1.pkcs.PBMAC1Params;
import org.bouncycastle.asn1.pkcs.PKCSObjectIdentifiers;
import org.bouncycastle.asn1.pkcs.PrivateKeyInfo;
import org.bouncycastle.asn1.sec.SECObjectIdentifiers;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.AlgorithmIdentifier;
import org.bouncycastle.asn1.x509.CRLReason;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.Extensions;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.SubjectKeyIdentifier;
import org.bouncycastle.asn1.x509.SubjectPublicKeyInfo;
import org.bouncycastle.asn1.x9.X9ObjectIdentifiers;
import org.bouncycastle.cert.X509CertificateHolder;
import org.bouncycastle.cert.cmp.CertificateConfirmationContent;
import org.bouncycastle.cert.cmp.CertificateConfirmationContentBuilder;
import org.bouncycastle.cert.cmp.GeneralPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessage;
import org.bouncycastle.cert.cmp.ProtectedPKIMessageBuilder;
import org.bouncycastle.cert.crmf.CertificateRequestMessageBuilder;
import org.bouncycastle.cert.crmf.Control;
import org.bouncycastle.cert.crmf.PKMACBuilder;
import org.bouncycastle.cert.crmf.jcajce.JcePKMACValuesCalculator;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cms.CMSEnvelopedData;
import org.bouncycastle.cms.CMSSignedData;
import org.bouncycastle.cms.PasswordRecipient;
import org.bouncycastle.cms.Recipient;
import org.bouncycastle.cms.RecipientInformation;
import org.bouncycastle.cms.SignerInformation;
import org.bouncycastle.cms.jcajce.JceKeyAgreeEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JceKeyTransEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JcePasswordEnvelopedRecipient;
import org.bouncycastle.cms.jcajce.JcaSimpleSignerInfoVerifierBuilder;
import org.bouncycastle.jce.provider.BouncyCastleProvider;
import org.bouncycastle.openssl.PEMKeyPair;
import org.bouncycastle.openssl.PEMParser;
import org.bouncycastle.openssl.jcajce.JcaPEMKeyConverter;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.bouncycastle.operator.ContentSigner;
import org.bouncycastle.operator.MacCalculator;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.bouncycastle.operator.jcajce.JcaContentVerifierProviderBuilder;
import org.bouncycastle.operator.jcajce.JcaDigestCalculatorProviderBuilder;
import org.bouncycastle.pkcs.jcajce.JcePBMac1CalculatorBuilder;
import org.bouncycastle.pkcs.jcajce.JcePBMac1CalculatorProviderBuilder;

public final class BcCmpClient {
    static final ASN1ObjectIdentifier ID_IT_CERT_PROFILE = new ASN1ObjectIdentifier("1.3.6.1.5.5.7.4.21");
    static final ASN1ObjectIdentifier ID_REGCTRL_OLDCERTID = new ASN1ObjectIdentifier("1.3.6.1.5.5.7.5.1.5");
    static final ASN1ObjectIdentifier ID_CT_KP_AKEYPACKAGE = new ASN1ObjectIdentifier("2.16.840.1.101.2.1.2.78.5");
    static final ASN1ObjectIdentifier ID_PBM = new ASN1ObjectIdentifier("1.2.840.113533.7.66.13");
    static final String[] FAIL_INFO = {
        "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId", "badDataFormat",
        "wrongAuthority", "incorrectData", "missingTimeStamp", "badPOP", "certRevoked",
        "certConfirmed", "wrongIntegrity", "badRecipientNonce", "timeNotAvailable",
        "unacceptedPolicy", "unacceptedExtension", "addInfoNotAvailable", "badSenderNonce",
        "badCertTemplate", "signerNotTrusted", "transactionIdInUse", "unsupportedVersion",
        "notAuthorized", "systemUnavail", "systemFailure", "duplicateCertReq" };
    static final String[] STATUS = {
        "accepted", "grantedWithMods", "rejection", "waiting", "revocationWarning",
        "revocationNotification", "keyUpdateWarning" };

    static final Map<String, String> opt = new HashMap<>();
    static final SecureRandom rnd = new SecureRandom();
    static final String BC = "BC";

    /** An answer failed a check: exit 1 with the reason. */
    static final class CheckFailed extends Exception {
        private static final long serialVersionUID = 1L;
        CheckFailed(String m) { super(m); }
    }

    /** The server refused: exit 2. */
    static final class Refused extends Exception {
        private static final long serialVersionUID = 1L;
        Refused(String m) { super(m); }
    }

    public static void main(String[] args) {
        Security.addProvider(new BouncyCastleProvider());
        if (args.length < 1 || args.length % 2 != 1) {
            System.err.println("usage: BcCmpClient ir|cr|kur|rr --OPTION VALUE ...");
            System.exit(3);
        }
        for (int i = 1; i < args.length; i += 2) {
            if (!args[i].startsWith("--")) {
                System.err.println("bc-cmp: not an option: " + args[i]);
                System.exit(3);
            }
            opt.put(args[i].substring(2), args[i + 1]);
        }
        try {
            switch (args[0]) {
            case "ir": enroll(PKIBody.TYPE_INIT_REQ); break;
            case "cr": enroll(PKIBody.TYPE_CERT_REQ); break;
            case "kur": enroll(PKIBody.TYPE_KEY_UPDATE_REQ); break;
            case "rr": revoke(); break;
            default:
                System.err.println("bc-cmp: unknown command " + args[0]);
                System.exit(3);
            }
        } catch (Refused e) {
            System.out.println("refused: " + e.getMessage());
            System.exit(2);
        } catch (CheckFailed e) {
            System.out.println("check failed: " + e.getMessage());
            System.exit(1);
        } catch (Exception e) {
            System.out.println("error: " + e);
            e.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    static String need(String k) throws CheckFailed {
        String v = opt.get(k);
        if (v == null)
            throw new CheckFailed("--" + k + " is needed");
        return v;
    }

    // ---- files ----

    static List<X509CertificateHolder> readCerts(String file) throws Exception {
        List<X509CertificateHolder> l = new ArrayList<>();
        try (PEMParser p = new PEMParser(new FileReader(file))) {
            Object o;
            while ((o = p.readObject()) != null)
                if (o instanceof X509CertificateHolder)
                    l.add((X509CertificateHolder) o);
        }
        if (l.isEmpty())
            throw new CheckFailed(file + ": no certificate");
        return l;
    }

    static PrivateKey readKey(String file) throws Exception {
        try (PEMParser p = new PEMParser(new FileReader(file))) {
            Object o = p.readObject();
            JcaPEMKeyConverter conv = new JcaPEMKeyConverter().setProvider(BC);
            if (o instanceof PEMKeyPair)
                return conv.getKeyPair((PEMKeyPair) o).getPrivate();
            if (o instanceof PrivateKeyInfo)
                return conv.getPrivateKey((PrivateKeyInfo) o);
            throw new CheckFailed(file + ": not an unencrypted private key");
        }
    }

    static void writePem(String file, Object o, boolean secret) throws Exception {
        StringWriter sw = new StringWriter();
        try (JcaPEMWriter w = new JcaPEMWriter(sw)) {
            w.writeObject(o instanceof PrivateKey ? new JcaPKCS8Generator((PrivateKey) o, null) : o);
        }
        Path p = Paths.get(file);
        Files.deleteIfExists(p);
        if (secret)
            Files.createFile(p, PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rw-------")));
        Files.write(p, sw.toString().getBytes(StandardCharsets.US_ASCII));
    }

    // ---- keys and signatures ----

    static String sigAlg(PrivateKey k) {
        switch (k.getAlgorithm()) {
        case "RSA": return "SHA256withRSA";
        case "Ed25519": case "EdDSA": return "Ed25519";
        default: return "SHA256withECDSA";
        }
    }

    static ContentSigner signer(PrivateKey k) throws Exception {
        return new JcaContentSignerBuilder(sigAlg(k)).setProvider(BC).build(k);
    }

    static KeyPair newKey(String type) throws Exception {
        KeyPairGenerator g;
        if (type.equals("rsa")) {
            g = KeyPairGenerator.getInstance("RSA", BC);
            g.initialize(2048, rnd);
        } else {
            g = KeyPairGenerator.getInstance("EC", BC);
            g.initialize(new ECGenParameterSpec("P-256"), rnd);
        }
        return g.generateKeyPair();
    }

    /** The private key belongs to the public one: a signature made with it verifies. */
    static boolean pairs(PrivateKey priv, PublicKey pub) throws Exception {
        byte[] data = new byte[32];
        rnd.nextBytes(data);
        Signature s = Signature.getInstance(sigAlg(priv), BC);
        s.initSign(priv);
        s.update(data);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance(sigAlg(priv), BC);
        v.initVerify(pub);
        v.update(data);
        return v.verify(sig);
    }

    static X509Certificate jca(X509CertificateHolder h) throws Exception {
        return new JcaX509CertificateConverter().setProvider(BC).getCertificate(h);
    }

    /** PKIX path from the certificate to a --trusted anchor, through the given intermediates. */
    static void validate(String what, X509CertificateHolder leaf, Collection<X509CertificateHolder> inter)
            throws Exception {
        Set<TrustAnchor> anchors = new HashSet<>();
        for (X509CertificateHolder h : readCerts(need("trusted")))
            anchors.add(new TrustAnchor(jca(h), null));
        List<X509Certificate> pool = new ArrayList<>();
        pool.add(jca(leaf));
        for (X509CertificateHolder h : inter)
            pool.add(jca(h));
        X509CertSelector sel = new X509CertSelector();
        sel.setCertificate(jca(leaf));
        PKIXBuilderParameters pp = new PKIXBuilderParameters(anchors, sel);
        pp.setRevocationEnabled(false);
        pp.addCertStore(CertStore.getInstance("Collection", new CollectionCertStoreParameters(pool), BC));
        try {
            CertPathBuilder.getInstance("PKIX", BC).build(pp);
        } catch (Exception e) {
            throw new CheckFailed(what + " " + leaf.getSubject() + " does not chain to --trusted: " + e.getMessage());
        }
    }

    // ---- messages ----

    /** How this client protects what it sends: a MAC over a secret, or a signature. */
    static final class Protection {
        char[] secret;
        String mac;
        X509CertificateHolder cert;
        List<X509CertificateHolder> chain = new ArrayList<>();
        PrivateKey key;
    }

    static Protection protection() throws Exception {
        Protection p = new Protection();
        if (opt.containsKey("secret")) {
            p.secret = opt.get("secret").toCharArray();
            p.mac = opt.getOrDefault("mac", "pbmac1");
            need("ref");
        } else {
            List<X509CertificateHolder> l = readCerts(need("cert"));
            p.cert = l.get(0);
            p.chain = l.subList(1, l.size());
            p.key = readKey(need("key"));
        }
        return p;
    }

    static int iterations() {
        return Integer.parseInt(opt.getOrDefault("iterations", "10000"));
    }

    static MacCalculator macCalculator(Protection p) throws Exception {
        byte[] salt = new byte[16];
        rnd.nextBytes(salt);
        if (p.mac.equals("pbm")) {
            PBMParameter prm = new PBMParameter(salt, new AlgorithmIdentifier(NISTObjectIdentifiers.id_sha256),
                iterations(), new AlgorithmIdentifier(PKCSObjectIdentifiers.id_hmacWithSHA256));
            return new PKMACBuilder(new JcePKMACValuesCalculator().setProvider(BC)).setParameters(prm)
                .build(p.secret);
        }
        return new JcePBMac1CalculatorBuilder("HmacSHA256", 256).setProvider(BC)
            .setPrf(JcePBMac1CalculatorBuilder.PRF_SHA256).setIterationCount(iterations()).setSalt(salt)
            .build(p.secret);
    }

    static byte[] random16() {
        byte[] b = new byte[16];
        rnd.nextBytes(b);
        return b;
    }

    static PKIMessage protect(Protection p, PKIBody body, byte[] tid, byte[] recipNonce) throws Exception {
        GeneralName sender = p.cert != null ? new GeneralName(p.cert.getSubject())
            : new GeneralName(new X500Name(opt.getOrDefault("subject", "CN=" + opt.get("ref"))));
        GeneralName recipient = new GeneralName(new X500Name(need("recipient")));
        ProtectedPKIMessageBuilder b = new ProtectedPKIMessageBuilder(PKIHeader.CMP_2000, sender, recipient);
        b.setTransactionID(tid).setSenderNonce(random16()).setMessageTime(new Date()).setBody(body);
        if (recipNonce != null)
            b.setRecipNonce(recipNonce);
        if (opt.containsKey("profile"))
            b.addGeneralInfo(new InfoTypeAndValue(ID_IT_CERT_PROFILE,
                new DERSequence(new DERUTF8String(opt.get("profile")))));
        if (p.secret != null) {
            b.setSenderKID(opt.get("ref").getBytes(StandardCharsets.UTF_8));
            return b.build(macCalculator(p)).toASN1Structure();
        }
        SubjectKeyIdentifier ski = SubjectKeyIdentifier.fromExtensions(p.cert.getExtensions());
        if (ski != null)
            b.setSenderKID(ski.getKeyIdentifier());
        b.addCMPCertificate(p.cert);
        for (X509CertificateHolder h : p.chain)
            b.addCMPCertificate(h);
        return b.build(signer(p.key)).toASN1Structure();
    }

    static int exchanged = 0;

    static PKIMessage exchange(PKIMessage req) throws Exception {
        exchanged++;
        if (opt.containsKey("save"))
            Files.write(Paths.get(opt.get("save") + "-req" + exchanged + ".der"), req.getEncoded());
        HttpURLConnection c = (HttpURLConnection) new URL(need("url")).openConnection();
        c.setConnectTimeout(10000);
        c.setReadTimeout(60000);
        c.setRequestMethod("POST");
        c.setDoOutput(true);
        c.setRequestProperty("Content-Type", "application/pkixcmp");
        byte[] der = req.getEncoded();
        c.setFixedLengthStreamingMode(der.length);
        try (OutputStream o = c.getOutputStream()) {
            o.write(der);
        }
        int code = c.getResponseCode();
        ByteArrayOutputStream got = new ByteArrayOutputStream();
        try (InputStream in = code == 200 ? c.getInputStream() : c.getErrorStream()) {
            if (in != null)
                in.transferTo(got);
        }
        if (opt.containsKey("save"))
            Files.write(Paths.get(opt.get("save") + "-ans" + exchanged + ".der"), got.toByteArray());
        if (!"application/pkixcmp".equals(c.getContentType()))
            throw new CheckFailed("HTTP " + code + " answered " + c.getContentType() + ", not a PKIMessage");
        try {
            return PKIMessage.getInstance(got.toByteArray());
        } catch (Exception e) {
            throw new CheckFailed("HTTP " + code + ": the answer is not a PKIMessage: " + e);
        }
    }

    static String describeMac(AlgorithmIdentifier alg) {
        if (alg.getAlgorithm().equals(ID_PBM)) {
            PBMParameter prm = PBMParameter.getInstance(alg.getParameters());
            return "PBM owf " + prm.getOwf().getAlgorithm() + " mac " + prm.getMac().getAlgorithm()
                + " iterations " + prm.getIterationCount().getValue();
        }
        PBMAC1Params prm = PBMAC1Params.getInstance(alg.getParameters());
        PBKDF2Params kdf = PBKDF2Params.getInstance(prm.getKeyDerivationFunc().getParameters());
        return "PBMAC1 prf " + kdf.getPrf().getAlgorithm() + " mac " + prm.getMessageAuthScheme().getAlgorithm()
            + " iterations " + kdf.getIterationCount();
    }

    /**
     * The checks RFC 9810 5.1/5.2 and RFC 9483 3.5 ask of a client for every
     * answer: same transactionID, recipNonce = our senderNonce, protected, and
     * the protection verifies (MAC with our secret; signature by a certificate
     * that chains to --trusted).
     */
    static void verifyAnswer(Protection p, PKIMessage req, PKIMessage ans) throws Exception {
        PKIHeader rh = req.getHeader(), ah = ans.getHeader();
        if (!Arrays.equals(rh.getTransactionID().getOctets(), ah.getTransactionID() == null ? null
                : ah.getTransactionID().getOctets()))
            throw new CheckFailed("the answer's transactionID is not the request's");
        if (ah.getRecipNonce() == null || !Arrays.equals(rh.getSenderNonce().getOctets(), ah.getRecipNonce().getOctets()))
            throw new CheckFailed("the answer's recipNonce is not the request's senderNonce");
        AlgorithmIdentifier alg = ah.getProtectionAlg();
        if (alg == null || ans.getProtection() == null)
            throw new CheckFailed("the answer is not protected");
        ProtectedPKIMessage pm = new ProtectedPKIMessage(new GeneralPKIMessage(ans));
        if (pm.hasPasswordBasedMacProtection() || alg.getAlgorithm().equals(PKCSObjectIdentifiers.id_PBMAC1)) {
            if (p.secret == null)
                throw new CheckFailed("a signed request got a MAC-protected answer");
            boolean ok = alg.getAlgorithm().equals(ID_PBM)
                ? pm.verify(new PKMACBuilder(new JcePKMACValuesCalculator().setProvider(BC), 1000000), p.secret)
                : pm.verify(new JcePBMac1CalculatorProviderBuilder().setProvider(BC).build(), p.secret);
            if (!ok)
                throw new CheckFailed("the answer's MAC does not verify with our secret");
            System.out.println("answer protection: " + describeMac(alg) + ": verified");
            return;
        }
        X509CertificateHolder[] certs = pm.getCertificates();
        if (certs.length == 0)
            throw new CheckFailed("a signed answer without extraCerts");
        if (!pm.verify(new JcaContentVerifierProviderBuilder().setProvider(BC).build(certs[0])))
            throw new CheckFailed("the answer's signature does not verify with its first extraCert");
        if (!new GeneralName(certs[0].getSubject()).equals(ah.getSender()))
            throw new CheckFailed("the answer's sender is not the subject of its signing certificate");
        validate("the answer's signer", certs[0], Arrays.asList(certs));
        System.out.println("answer protection: signature by " + certs[0].getSubject() + ": verified, chains to --trusted");
    }

    static String statusText(PKIStatusInfo si) {
        StringBuilder s = new StringBuilder();
        int st = si.getStatus().intValue();
        s.append(st < STATUS.length ? STATUS[st] : "status " + st);
        if (si.getFailInfo() != null) {
            byte[] b = si.getFailInfo().getBytes();
            for (int i = 0; i < FAIL_INFO.length && i / 8 < b.length; i++)
                if ((b[i / 8] >> (7 - i % 8) & 1) != 0)
                    s.append(' ').append(FAIL_INFO[i]);
        }
        PKIFreeText t = si.getStatusString();
        if (t != null)
            for (int i = 0; i < t.size(); i++)
                s.append(" \"").append(t.getStringAtUTF8(i).getString()).append('"');
        return s.toString();
    }

    static void expectBody(PKIMessage ans, int type) throws Exception {
        int got = ans.getBody().getType();
        if (got == PKIBody.TYPE_ERROR)
            throw new Refused("error message: "
                + statusText(ErrorMsgContent.getInstance(ans.getBody().getContent()).getPKIStatusInfo()));
        if (got != type)
            throw new CheckFailed("answer body type " + got + ", expected " + type);
    }

    // ---- ir, cr, kur ----

    static Control oldCertId(X509CertificateHolder old) {
        CertId id = new CertId(new GeneralName(old.getIssuer()), old.getSerialNumber());
        return new Control() {
            public ASN1ObjectIdentifier getType() { return ID_REGCTRL_OLDCERTID; }
            public ASN1Encodable getValue() { return id; }
        };
    }

    static void enroll(int type) throws Exception {
        Protection p = protection();
        String nk = opt.getOrDefault("newkey", "ec");
        boolean central = nk.startsWith("central");
        CertificateRequestMessageBuilder rb = new CertificateRequestMessageBuilder(BigInteger.ZERO);
        X500Name subject = opt.containsKey("subject") ? new X500Name(opt.get("subject"))
            : p.cert != null ? p.cert.getSubject() : null;
        if (subject == null)
            throw new CheckFailed("--subject is needed");
        rb.setSubject(subject);
        KeyPair kp = null;
        if (nk.equals("central-empty")) {
            // RFC 9483 4.1.6: the algorithm asked for, with an empty key
            rb.setPublicKey(new SubjectPublicKeyInfo(new AlgorithmIdentifier(X9ObjectIdentifiers.id_ecPublicKey,
                SECObjectIdentifiers.secp256r1), new byte[0]));
        } else if (!central) {
            kp = newKey(nk);
            rb.setPublicKey(SubjectPublicKeyInfo.getInstance(kp.getPublic().getEncoded()));
            rb.setProofOfPossessionSigningKeySigner(signer(kp.getPrivate()));
        }
        if (type == PKIBody.TYPE_KEY_UPDATE_REQ)
            rb.addControl(oldCertId(p.cert));
        PKIBody body = new PKIBody(type, new CertReqMessages(rb.build().toASN1Structure()));
        byte[] tid = random16();
        PKIMessage req = protect(p, body, tid, null);
        PKIMessage ans = exchange(req);
        verifyAnswer(p, req, ans);
        expectBody(ans, type + 1);
        CertRepMessage rep = CertRepMessage.getInstance(ans.getBody().getContent());
        CertResponse r = rep.getResponse()[0];
        int st = r.getStatus().getStatus().intValue();
        System.out.println("status: " + statusText(r.getStatus()));
        if (st != 0 && st != 1)
            throw new Refused(statusText(r.getStatus()));
        if (!r.getCertReqId().getValue().equals(BigInteger.ZERO))
            throw new CheckFailed("certReqId " + r.getCertReqId().getValue() + ", expected 0");
        CertifiedKeyPair ckp = r.getCertifiedKeyPair();
        CMPCertificate cc = ckp == null ? null : ckp.getCertOrEncCert().getCertificate();
        if (cc == null || !cc.isX509v3PKCert())
            throw new CheckFailed("no certificate in the answer");
        X509CertificateHolder cert = new X509CertificateHolder(cc.getX509v3PKCert());
        List<X509CertificateHolder> pool = new ArrayList<>();
        for (CMPCertificate x : ans.getExtraCerts() == null ? new CMPCertificate[0] : ans.getExtraCerts())
            pool.add(new X509CertificateHolder(x.getX509v3PKCert()));
        if (rep.getCaPubs() != null)
            for (CMPCertificate x : rep.getCaPubs())
                pool.add(new X509CertificateHolder(x.getX509v3PKCert()));
        validate("the new certificate", cert, pool);
        if (!cert.getSubject().equals(subject))
            throw new CheckFailed("the certificate's subject " + cert.getSubject() + " is not " + subject);
        PublicKey certKey = jca(cert).getPublicKey();
        PrivateKey priv;
        if (central) {
            priv = centralKey(p, ckp.getPrivateKey(), pool);
        } else {
            if (ckp.getPrivateKey() != null)
                throw new CheckFailed("a private key came though we sent a public one");
            priv = kp.getPrivate();
        }
        if (!pairs(priv, certKey))
            throw new CheckFailed("the certificate is not for the key");
        System.out.println("certificate: " + cert.getSubject() + " serial " + cert.getSerialNumber()
            + ", chains to --trusted, for " + (central ? "the key the CA generated" : "our key"));
        if (opt.containsKey("out"))
            writePem(opt.get("out"), cert, false);
        if (opt.containsKey("key-out"))
            writePem(opt.get("key-out"), priv, true);

        CertificateConfirmationContent conf = new CertificateConfirmationContentBuilder()
            .addAcceptedCertificate(cert, BigInteger.ZERO)
            .build(new JcaDigestCalculatorProviderBuilder().setProvider(BC).build());
        PKIMessage req2 = protect(p, new PKIBody(PKIBody.TYPE_CERT_CONFIRM, conf.toASN1Structure()), tid,
            ans.getHeader().getSenderNonce().getOctets());
        PKIMessage ans2 = exchange(req2);
        verifyAnswer(p, req2, ans2);
        expectBody(ans2, PKIBody.TYPE_CONFIRM);
        System.out.println("confirmed");
    }

    /**
     * RFC 9483 4.1.6: the private key comes as EnvelopedData (for our secret,
     * or for our protection certificate) holding SignedData of content type
     * id-ct-KP-aKeyPackage, signed by a key whose certificate chains to
     * --trusted, around an AsymmetricKeyPackage of one OneAsymmetricKey.
     */
    static PrivateKey centralKey(Protection p, EncryptedKey ek, List<X509CertificateHolder> pool) throws Exception {
        if (ek == null)
            throw new CheckFailed("central key generation asked for, but no private key came");
        if (ek.isEncryptedValue())
            throw new CheckFailed("the private key came as EncryptedValue, not EnvelopedData (RFC 9483 4.1.6)");
        CMSEnvelopedData env = new CMSEnvelopedData(new ContentInfo(CMSObjectIdentifiers.envelopedData,
            EnvelopedData.getInstance(ek.getValue())));
        RecipientInformation ri = env.getRecipientInfos().getRecipients().iterator().next();
        Recipient rcpt;
        String how;
        if (p.secret != null) {
            rcpt = new JcePasswordEnvelopedRecipient(p.secret)
                .setPasswordConversionScheme(PasswordRecipient.PKCS5_SCHEME2_UTF8).setProvider(BC);
            how = "our secret (password recipient)";
        } else if (p.key.getAlgorithm().equals("RSA")) {
            rcpt = new JceKeyTransEnvelopedRecipient(p.key).setProvider(BC);
            how = "our certificate (key transport)";
        } else {
            rcpt = new JceKeyAgreeEnvelopedRecipient(p.key).setProvider(BC);
            how = "our certificate (key agreement)";
        }
        byte[] inner = ri.getContent(rcpt);
        CMSSignedData sd = new CMSSignedData(inner);
        if (!sd.getSignedContentTypeOID().equals(ID_CT_KP_AKEYPACKAGE.getId()))
            throw new CheckFailed("the signed content is " + sd.getSignedContentTypeOID() + ", not an AsymmetricKeyPackage");
        SignerInformation si = sd.getSignerInfos().getSigners().iterator().next();
        @SuppressWarnings("unchecked")
        Collection<X509CertificateHolder> signers = sd.getCertificates().getMatches(si.getSID());
        if (signers.isEmpty())
            throw new CheckFailed("the key package's signer certificate is not in the SignedData");
        X509CertificateHolder sc = signers.iterator().next();
        if (!si.verify(new JcaSimpleSignerInfoVerifierBuilder().setProvider(BC).build(sc)))
            throw new CheckFailed("the key package's signature does not verify");
        @SuppressWarnings("unchecked")
        Collection<X509CertificateHolder> all = sd.getCertificates().getMatches(null);
        List<X509CertificateHolder> chain = new ArrayList<>(all);
        chain.addAll(pool);
        validate("the key package's signer", sc, chain);
        ASN1Sequence akp = ASN1Sequence.getInstance((byte[]) sd.getSignedContent().getContent());
        if (akp.size() != 1)
            throw new CheckFailed("the key package holds " + akp.size() + " keys, expected 1");
        PrivateKey k = new JcaPEMKeyConverter().setProvider(BC).getPrivateKey(PrivateKeyInfo.getInstance(akp.getObjectAt(0)));
        System.out.println("central key: " + k.getAlgorithm() + ", enveloped for " + how + ", signed by "
            + sc.getSubject() + ": verified");
        return k;
    }

    // ---- rr ----

    static void revoke() throws Exception {
        Protection p = protection();
        X509CertificateHolder target = opt.containsKey("revoke") ? readCerts(opt.get("revoke")).get(0) : p.cert;
        if (target == null)
            throw new CheckFailed("--revoke is needed");
        CertTemplateBuilder tb = new CertTemplateBuilder().setIssuer(target.getIssuer())
            .setSerialNumber(new ASN1Integer(target.getSerialNumber()));
        int reason = Integer.parseInt(opt.getOrDefault("reason", "1"));
        Extensions crlEntry = new Extensions(new Extension(Extension.reasonCode, false,
            new DEROctetString(CRLReason.lookup(reason))));
        PKIBody body = new PKIBody(PKIBody.TYPE_REVOCATION_REQ,
            new RevReqContent(new RevDetails(tb.build(), crlEntry)));
        PKIMessage req = protect(p, body, random16(), null);
        PKIMessage ans = exchange(req);
        verifyAnswer(p, req, ans);
        expectBody(ans, PKIBody.TYPE_REVOCATION_REP);
        PKIStatusInfo si = RevRepContent.getInstance(ans.getBody().getContent()).getStatus()[0];
        System.out.println("status: " + statusText(si));
        if (si.getStatus().intValue() != 0)
            throw new Refused(statusText(si));
        System.out.println("revoked: serial " + target.getSerialNumber());
    }
}
