/* CMP in e-mail (cmp-wire.md 3; RFC 9483 6.4.2): taking the CMP messages out
 * of an untrusted mail and building the reply. GMime does the MIME work;
 * nothing here does I/O. */
#ifndef CMPR_MAILMSG_H
#define CMPR_MAILMSG_H

#include <stddef.h>

struct cmpr_mail_limits {
    size_t max_mail;            /* whole mail, bytes (larger: only headers looked at) */
    size_t max_parts;           /* MIME parts looked at */
    size_t max_depth;           /* nesting of multiparts and attached messages */
    size_t max_part;            /* one decoded CMP part, bytes */
};

struct cmpr_mail_part {
    unsigned char *der;         /* NULL when the part was refused (see problem) */
    size_t len;
    char name[128];             /* its file name, printable */
    char problem[200];          /* why it was refused, or "" */
};

struct cmpr_mail_in {
    char from[256];             /* bare address to answer: Reply-To, else From ("" if none usable) */
    char subject[256];          /* decoded, control characters replaced */
    char message_id[256];       /* without <>, "" if absent or unusable */
    char references[1024];      /* "<a> <b>" (usable ids only) */
    struct cmpr_mail_part *parts;
    size_t n_parts, cap_parts;
    char problem[256];          /* about the mail as a whole, or "" */
};

/* Fills m from raw (never fails on hostile input: what is wrong ends up in
 * problem fields). -1 only when out of memory. cmpr_mail_init() first. */
int cmpr_mail_parse(const unsigned char *raw, size_t len, const struct cmpr_mail_limits *lim,
                    struct cmpr_mail_in *m);
void cmpr_mail_in_free(struct cmpr_mail_in *m);

/* One answer to carry back: the DER (NULL for a refused part) and its text. */
struct cmpr_mail_answer {
    const unsigned char *der;
    size_t len;
    const char *name;           /* request part's name, for the answer's file name */
    const char *text;           /* what it means for a person */
};

/* The reply mail (RFC 5322, LF line ends): From from, To m->from, "Re:"
 * subject, In-Reply-To/References, Message-ID, Date, a text/plain part and
 * one application/pkixcmp part (base64, NAME.rsp.pki) per answer with a DER.
 * *out is malloc()ed. -1 on failure. */
int cmpr_mail_build_reply(const struct cmpr_mail_in *m, const char *from,
                          const struct cmpr_mail_answer *answers, size_t n, const char *note,
                          unsigned char **out, size_t *out_len);

/* A mail carrying one request (the EE client's): From, To, Subject (control
 * characters become spaces), Message-ID (without <>, into id_out), Date, the
 * text and the DER as a base64 application/pkixcmp part named name. */
int cmpr_mail_build_request(const char *from, const char *to, const char *subject,
                            const char *text, const unsigned char *der, size_t len, const char *name,
                            char *id_out, size_t id_len, unsigned char **out, size_t *out_len);
/* 1 if addr is a plain addr-spec we are willing to write into a header */
int cmpr_mail_addr_ok(const char *addr);
/* the domain of addr ("" if none) */
const char *cmpr_mail_domain(const char *addr);

/* g_mime_init once per process (idempotent, thread-safe). */
void cmpr_mail_init(void);

#endif
