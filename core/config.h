/* cmprouter.conf: one INI file (GKeyFile syntax). Every directive is in a
 * table; unknown groups, unknown keys and bad values are errors that name
 * file:line. Paths are relative to the file's directory. See cmprouter.conf(5). */
#ifndef CMPR_CORE_CONFIG_H
#define CMPR_CORE_CONFIG_H

#include <stddef.h>

struct cmpr_conf_profile {
    char *name;
    long validity_days;             /* validity granted; a longer request is capped */
    char **key_usage;               /* names: digitalSignature, keyEncipherment, ... */
    char **allowed_key_usage;       /* what a request may ask for (default: key_usage) */
    char **extended_key_usage;      /* serverAuth, clientAuth, ... or dotted OIDs */
    char **allowed_extended_key_usage;
    char **certificate_policies;    /* policy OIDs put into every certificate */
    char **allowed_certificate_policies;
    int policies_critical;
    char *policy_cps;               /* qualifiers of each policy: CPS URI, user notice text */
    char *policy_notice;
    char **san_types;               /* subjectAltName types taken from requests (default dns,ip,email,uri) */
    char *name_constraints;         /* CA profiles: OpenSSL's syntax, e.g. permitted;DNS:.example.org */
    int central_keygen;             /* 0 no, 1 allowed, 2 required (RFC 9483 4.1.6) */
    char *central_key_type;         /* what the CA generates when the request names no type */
    char **key_types;               /* ec:P-256, rsa:2048-4096, ed25519, ed448 */
    int ca;                         /* basicConstraints CA:TRUE (sub-CA profile) */
    long path_len;                  /* -1: none */
    int require_approval;
    int copy_san;                   /* take subjectAltName from the template */
    int revoke_replaced;            /* kur: revoke the old certificate once the new one is confirmed */
    char *subject;                  /* fnmatch(3) pattern on the RFC 2253 subject, or NULL */
    char *crl_distribution_point;   /* URI or NULL */
    char *aia_ca_issuers;
    char *aia_ocsp;
};

struct cmpr_conf_client {
    char *name;
    char *reference;                /* senderKID of MAC-protected requests */
    unsigned char *secret;          /* shared secret (wiped on free) */
    size_t secret_len;
    char **profiles;                /* allowed; the first is the default */
    char *subject;                  /* allowed subjects: exact DN or fnmatch pattern */
    char *cert_subject;             /* for signature clients: pattern on the signer's subject */
    char *tls_subject;              /* requests must arrive over TLS from this client certificate */
    int one_time;                   /* the reference works for one enrollment only */
    int ra;                         /* may send raVerified / nested (also needs cmcRA EKU when signing) */
    int enroll;                     /* may send ir/cr/p10cr/ccr */
    int renew, revoke;              /* enum cmpr_right: which certificates it may update (kur) or
                                       revoke; revoke -1: not set (any for an RA, else own) */
};

/* What a client may do to a certificate it does not hold ([client] renew,
 * revoke): none; its own (it enrolled them, or they succeed through kur one
 * it enrolled); any certificate of its profiles; any certificate. */
enum cmpr_right { CMPR_RIGHT_NONE, CMPR_RIGHT_OWN, CMPR_RIGHT_PROFILES, CMPR_RIGHT_ANY };
extern const char *const cmpr_right_names[];    /* "none", "own", "profiles", "any" */

struct cmpr_conf_ca {
    char *name;
    char *key, *cert, *chain;       /* PEM files */
    char *signer_cert, *signer_key; /* optional separate CMP signer (cmcCA EKU) */
    char *default_profile;
    char **profiles;                /* allowed, NULL = all */
    int mac_responses;              /* MAC-protect answers to MAC-authenticated clients */
    char *crl_file;                 /* written on every revocation and on schedule */
    long crl_days;                  /* nextUpdate - thisUpdate */
    char *encryption_cert, *encryption_key;   /* key archive/recovery (krr) */
};

/* A group the core does not read itself ([route NAME], and every group of a
 * transport: [TYPE NAME], or [TYPE] whose name is then TYPE): kept as
 * key/value pairs; whoever owns it checks and reads it. */
struct cmpr_conf_group {
    char *type;                     /* "listen" */
    char *name;                     /* "http" */
    char **keys, **values;
    int *lines;
    size_t n;
    int line;                       /* of the [type name] header */
    const char *path;               /* the file, for messages */
};

struct cmpr_conf {
    char *path;
    char *data_dir;                 /* default: the config file's directory */
    char *store;                    /* default: sqlite:<data_dir>/cmprouter.db */
    char *trusted;                  /* PEM trust anchors for signature-protected requests */
    char *untrusted;                /* PEM intermediates */
    char *log_level;
    char *log;                      /* "stderr" (default) or "syslog" */
    char *user;                     /* drop privileges to this user after binding */
    long max_mac_iterations;
    /* MAC parameters of the messages the router starts itself (answers
     * pushed later, the RA's own MAC towards an upstream): [0] PasswordBasedMac,
     * [1] PBMAC1; digest and MAC as NIDs, 0: the built-in default */
    char **pbm_defaults, **pbmac1_defaults;     /* "OWF, MAC, ITERATIONS" as written */
    struct { int owf_nid, mac_nid; long iter; } mac_defaults[2];
    long message_time_skew;         /* seconds; 0: messageTime not checked */
    long nonce_window;              /* seconds a senderNonce stays in the replay cache */
    long confirm_wait;              /* seconds to wait for certConf */
    long check_after;               /* pollRep checkAfter for pending requests */
    int implicit_confirm;           /* grant implicitConfirm when asked */
    char *node;                     /* this node's name among those sharing a store (default: the host's) */
    long lease;                     /* seconds a node holds a forwarding record it drives */
    struct cmpr_conf_ca *cas;
    size_t n_cas, cap_cas;
    struct cmpr_conf_profile *profiles;
    size_t n_profiles, cap_profiles;
    struct cmpr_conf_client *clients;
    size_t n_clients, cap_clients;
    /* secrets: a pass: value written in the file itself, file: values
     * (resolved, NULL-terminated), [router] secret_group */
    int inline_secrets;
    char **secret_files;
    char *secret_group;
    struct cmpr_conf_group *groups;   /* [route NAME] and the transports' groups */
    size_t n_groups, cap_groups;
};

/* Loads and checks path. On error *err_r is "FILE:LINE: what" (caller frees). */
int cmpr_conf_load(const char *path, struct cmpr_conf **conf_r, char **err_r);
/* Every file that holds a private key or a secret (the CA keys, ra_key,
 * tls_key, file: secrets, the configuration itself when it writes a pass:
 * secret) is neither readable nor writable by others, and by its group
 * only for reading and only when [router] secret_group names that group.
 * 0, or CMPR_ERR_CONFIG with *err_r naming the file and its mode. */
int cmpr_conf_check_secrets(const struct cmpr_conf *conf, char **err_r);
void cmpr_conf_free(struct cmpr_conf *conf);

const struct cmpr_conf_profile *cmpr_conf_profile(const struct cmpr_conf *c, const char *name);
const struct cmpr_conf_client *cmpr_conf_client_by_ref(const struct cmpr_conf *c,
                                                       const unsigned char *ref, size_t len);
const struct cmpr_conf_ca *cmpr_conf_ca(const struct cmpr_conf *c, const char *name);
int cmpr_strv_contains(char *const *v, const char *s);

/* key_usage names in bit order (RFC 5280 4.2.1.3); san_types names in
 * GENERAL_NAME type order (GEN_OTHERNAME .. GEN_RID); NULL-terminated */
extern const char *const cmpr_key_usage_names[];
extern const char *const cmpr_san_type_names[];

/* transport groups */
const struct cmpr_conf_group *cmpr_conf_group(const struct cmpr_conf *c, const char *type,
                                              const char *name);
const char *cmpr_conf_group_get(const struct cmpr_conf_group *g, const char *key);
/* "FILE:LINE: message" for key (or the group header when key is NULL); caller frees */
char *cmpr_conf_group_error(const struct cmpr_conf_group *g, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* every key of g must be in allowed (NULL-terminated); else *err_r */
int cmpr_conf_group_check(const struct cmpr_conf_group *g, const char *const *allowed, char **err_r);
/* key's value (or dflt when unset) as a path: absolute, or relative to the
 * file's directory; NULL when both are unset (caller frees) */
char *cmpr_conf_group_path(const struct cmpr_conf_group *g, const char *key, const char *dflt);
/* a number (with optional s/m/h suffix when secs, k/m suffix when bytes) */
/* a secret (pass:, env:, file:) as a string (g_free after wiping), NULL when
 * unset or wrong (then *err_r is set) */
char *cmpr_conf_group_secret(const struct cmpr_conf_group *g, const char *key, char **err_r);
/* yes/true/on/1 and no/false/off/0 (any case): 0, or -1 for anything else.
 * The one boolean parser of every directive. */
int cmpr_conf_parse_bool(const char *v, int *out);
/* key as a boolean (dflt when unset); anything else is an error with file:line */
int cmpr_conf_group_bool(const struct cmpr_conf_group *g, const char *key, int dflt, int *out,
                         char **err_r);
/* key as one of names (NULL-terminated): *out is its index (dflt when unset);
 * anything else is an error with file:line listing the names */
int cmpr_conf_group_choice(const struct cmpr_conf_group *g, const char *key, const char *const *names,
                           int dflt, int *out, char **err_r);
int cmpr_conf_group_long(const struct cmpr_conf_group *g, const char *key, long dflt, long min,
                         long max, long *out, char **err_r);

#endif
