/* CMP parts out of a hostile mail, and the reply mail back (see mailmsg.h). */
#include "codec/mime.h"
#include "base/buf.h"
#include "base/err.h"
#include "codec/dropname.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gmime/gmime.h>
#include <openssl/rand.h>

void
cmpr_mail_init(void)
{
    static gsize done = 0;

    if (g_once_init_enter(&done)) {
        g_mime_init();
        g_once_init_leave(&done, 1);
    }
}

int
cmpr_mail_addr_ok(const char *a)
{
    const char *at = strrchr(a, '@');
    size_t n = strlen(a);

    if (n == 0 || n > 254 || at == NULL || at == a || at[1] == '\0')
        return 0;
    for (const char *p = a; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        /* no controls, spaces, quotes, brackets, commas or semicolons: nothing
         * that could end a header field or add a recipient */
        if (c <= 0x20 || c >= 0x7f || strchr("\"(),:;<>[\\]", c) != NULL)
            return 0;
    }
    return 1;
}

const char *
cmpr_mail_domain(const char *addr)
{
    const char *at = strrchr(addr, '@');

    return at != NULL ? at + 1 : "";
}

static void
clean_text(const char *in, char *out, size_t len)
{
    size_t i = 0;

    for (; in != NULL && *in != '\0' && i + 1 < len; in++)
        out[i++] = (unsigned char)*in < 0x20 || *in == 0x7f ? ' ' : *in;
    out[i] = '\0';
}

/* a message id we can put back between <>: printable, no <>, spaces or quotes */
static int
msgid_ok(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > 200)
        return 0;
    for (const char *p = id; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '<' || *p == '>' || *p == '"' || *p == '\\')
            return 0;
    return strchr(id, '@') != NULL;
}

static void
first_addr(InternetAddressList *l, char *out, size_t len)
{
    for (int i = 0; l != NULL && i < internet_address_list_length(l); i++) {
        InternetAddress *a = internet_address_list_get_address(l, i);

        if (INTERNET_ADDRESS_IS_MAILBOX(a)) {
            const char *s = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(a));

            if (s != NULL && cmpr_mail_addr_ok(s)) {
                snprintf(out, len, "%s", s);
                return;
            }
        }
    }
}

struct walk {
    const struct cmpr_mail_limits *lim;
    struct cmpr_mail_in *m;
    size_t seen;                /* parts looked at */
    int oom;
};

static int
is_cmp_part(GMimeObject *o, const char *filename)
{
    GMimeContentType *ct = g_mime_object_get_content_type(o);
    size_t n;

    if (ct == NULL)
        return 0;
    if (g_mime_content_type_is_type(ct, "application", "pkixcmp")
            || g_mime_content_type_is_type(ct, "application", "x-pkixcmp"))
        return 1;
    /* a .pki attachment sent as application/octet-stream */
    return g_mime_content_type_is_type(ct, "application", "octet-stream") && filename != NULL
           && (n = strlen(filename)) > 4 && strcasecmp(filename + n - 4, ".pki") == 0;
}

static void
take_part(struct walk *w, GMimePart *part)
{
    const char *fn = g_mime_part_get_filename(part);
    struct cmpr_mail_part *p, *np;
    GMimeDataWrapper *dw;
    GMimeStream *mem;
    GByteArray *arr;

    if (!is_cmp_part(GMIME_OBJECT(part), fn))
        return;
    if (cmpr_array_grow(&w->m->parts, &w->m->cap_parts, w->m->n_parts + 1, sizeof(*np),
                        SIZE_MAX / sizeof(*np)) != CMPR_OK) {
        w->oom = 1;
        return;
    }
    np = w->m->parts;
    p = &np[w->m->n_parts++];
    memset(p, 0, sizeof(*p));
    cmpr_drop_printable(fn != NULL ? fn : "(no name)", p->name, sizeof(p->name));
    if (fn == NULL)
        snprintf(p->problem, sizeof(p->problem), "no file name (RFC 9483 6.4.2 wants NAME.pki); "
                 "taken all the same");
    if ((dw = g_mime_part_get_content(part)) == NULL) {
        snprintf(p->problem, sizeof(p->problem), "an empty part");
        return;
    }
    mem = g_mime_stream_mem_new();
    if (g_mime_data_wrapper_write_to_stream(dw, mem) < 0) {
        snprintf(p->problem, sizeof(p->problem), "its content cannot be decoded");
        g_object_unref(mem);
        return;
    }
    arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
    if (arr->len > w->lim->max_part) {
        snprintf(p->problem, sizeof(p->problem), "larger than %zu bytes once decoded", w->lim->max_part);
    } else {
        char why[300];

        if (cmpr_drop_check(arr->data, arr->len, w->lim->max_part, why, sizeof(why)) != 0) {
            snprintf(p->problem, sizeof(p->problem), "%.160s (broken base64?)", why);
        } else if ((p->der = malloc(arr->len)) == NULL) {
            w->oom = 1;
        } else {
            memcpy(p->der, arr->data, arr->len);
            p->len = arr->len;
            p->problem[0] = '\0';
        }
    }
    g_object_unref(mem);
}

static void
walk(struct walk *w, GMimeObject *o, size_t depth)
{
    if (o == NULL || w->oom)
        return;
    if (++w->seen > w->lim->max_parts) {
        if (w->m->problem[0] == '\0')
            snprintf(w->m->problem, sizeof(w->m->problem), "more than %zu MIME parts: the rest "
                     "was not looked at", w->lim->max_parts);
        return;
    }
    if (depth > w->lim->max_depth) {
        if (w->m->problem[0] == '\0')
            snprintf(w->m->problem, sizeof(w->m->problem), "MIME parts nested deeper than %zu "
                     "levels were not looked at", w->lim->max_depth);
        return;
    }
    if (GMIME_IS_MULTIPART(o)) {
        GMimeMultipart *mp = GMIME_MULTIPART(o);
        int n = g_mime_multipart_get_count(mp);

        for (int i = 0; i < n && w->seen <= w->lim->max_parts; i++)
            walk(w, g_mime_multipart_get_part(mp, i), depth + 1);
    } else if (GMIME_IS_MESSAGE_PART(o)) {
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(o));

        if (inner != NULL)
            walk(w, g_mime_message_get_mime_part(inner), depth + 1);
    } else if (GMIME_IS_PART(o)) {
        take_part(w, GMIME_PART(o));
    }
}

/* how many times needle occurs in raw (case-insensitive), counting up to cap */
static size_t
count_ci(const unsigned char *raw, size_t len, const char *needle, size_t cap)
{
    size_t n = strlen(needle), c = 0;

    for (size_t i = 0; i + n <= len && c <= cap; i++)
        if (strncasecmp((const char *)raw + i, needle, n) == 0)
            c++;
    return c;
}

int
cmpr_mail_parse(const unsigned char *raw, size_t len, const struct cmpr_mail_limits *lim,
                struct cmpr_mail_in *m)
{
    GMimeStream *st;
    GMimeParser *parser;
    GMimeMessage *msg;
    const char *v;
    int too_big = len > lim->max_mail;
    struct walk w = { lim, m, 0, 0 };

    memset(m, 0, sizeof(*m));
    cmpr_mail_init();
    /* a mail over the limit: only its headers are read, to answer it */
    if (too_big)
        len = len < 65536 ? len : 65536;
    st = g_mime_stream_mem_new_with_buffer((const char *)raw, len);
    parser = g_mime_parser_new_with_stream(st);
    g_object_unref(st);
    msg = g_mime_parser_construct_message(parser, NULL);
    g_object_unref(parser);
    if (msg == NULL) {
        snprintf(m->problem, sizeof(m->problem), "not a mail (no header could be read)");
        return 0;
    }
    first_addr(g_mime_message_get_reply_to(msg), m->from, sizeof(m->from));
    if (m->from[0] == '\0')
        first_addr(g_mime_message_get_from(msg), m->from, sizeof(m->from));
    clean_text(g_mime_message_get_subject(msg), m->subject, sizeof(m->subject));
    if ((v = g_mime_message_get_message_id(msg)) != NULL && msgid_ok(v))
        snprintf(m->message_id, sizeof(m->message_id), "%s", v);
    if ((v = g_mime_object_get_header(GMIME_OBJECT(msg), "References")) != NULL) {
        GMimeReferences *refs = g_mime_references_parse(NULL, v);
        size_t off = 0;

        for (int i = 0; refs != NULL && i < g_mime_references_length(refs) && i < 20; i++) {
            const char *id = g_mime_references_get_message_id(refs, i);
            int n;

            if (id == NULL || !msgid_ok(id))
                continue;
            n = snprintf(m->references + off, sizeof(m->references) - off, "%s<%s>", off ? " " : "", id);
            if (n < 0 || (size_t)n >= sizeof(m->references) - off) {
                m->references[off] = '\0';
                break;
            }
            off += (size_t)n;
        }
        if (refs != NULL)
            g_mime_references_free(refs);
    }
    if (too_big) {
        snprintf(m->problem, sizeof(m->problem), "the mail is larger than %zu bytes and was not "
                 "processed", lim->max_mail);
    } else if (count_ci(raw, len, "multipart/", lim->max_parts) > lim->max_parts) {
        snprintf(m->problem, sizeof(m->problem), "more than %zu multipart levels or parts: the "
                 "mail was not processed", lim->max_parts);
    } else {
        walk(&w, g_mime_message_get_mime_part(msg), 0);
        if (m->n_parts == 0 && m->problem[0] == '\0')
            snprintf(m->problem, sizeof(m->problem), "no CMP message in the mail (expected an "
                     "application/pkixcmp part with a .pki file name, RFC 9483 6.4.2)");
    }
    g_object_unref(msg);
    return w.oom ? -1 : 0;
}

void
cmpr_mail_in_free(struct cmpr_mail_in *m)
{
    for (size_t i = 0; i < m->n_parts; i++)
        free(m->parts[i].der);
    free(m->parts);
    m->parts = NULL;
    m->n_parts = m->cap_parts = 0;
}

/* The whole mail: From, To, Subject, threading (irt: message id without <>,
 * or ""), Message-ID (into id_out), Date, the text and one base64
 * application/pkixcmp part per part with a DER, named by its own name
 * (request) or the answer name made from it (reply). */
static int
compose(const char *from, const char *to, const char *subject, const char *irt_id,
        const char *references, const char *text_body, const struct cmpr_mail_answer *parts,
        size_t n, int answer_names, char *id_out, size_t id_len, unsigned char **out,
        size_t *out_len)
{
    GMimeMessage *msg;
    GMimeMultipart *mixed;
    GMimeTextPart *text;
    GMimeStream *mem;
    GByteArray *arr;
    GDateTime *now;
    char id[128], *refs;
    unsigned char rnd[12];
    int r = -1;

    cmpr_mail_init();
    msg = g_mime_message_new(TRUE);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_FROM, NULL, from);
    g_mime_message_add_mailbox(msg, GMIME_ADDRESS_TYPE_TO, NULL, to);
    g_mime_message_set_subject(msg, subject, "utf-8");
    if (irt_id[0] != '\0') {
        char irt[300];

        snprintf(irt, sizeof(irt), "<%s>", irt_id);
        g_mime_object_set_header(GMIME_OBJECT(msg), "In-Reply-To", irt, NULL);
        refs = g_strdup_printf("%s%s%s", references, references[0] ? " " : "", irt);
        g_mime_object_set_header(GMIME_OBJECT(msg), "References", refs, NULL);
        g_free(refs);
    }
    RAND_bytes(rnd, sizeof(rnd));
    snprintf(id, sizeof(id), "cmprouter.%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x%02x@%s",
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6], rnd[7], rnd[8], rnd[9],
             rnd[10], rnd[11], cmpr_mail_domain(from));
    g_mime_message_set_message_id(msg, id);
    if (id_out != NULL)
        snprintf(id_out, id_len, "%s", id);
    now = g_date_time_new_now_utc();
    g_mime_message_set_date(msg, now);
    g_date_time_unref(now);

    mixed = g_mime_multipart_new_with_subtype("mixed");
    text = g_mime_text_part_new_with_subtype("plain");
    g_mime_text_part_set_text(text, text_body);
    g_mime_multipart_add(mixed, GMIME_OBJECT(text));
    g_object_unref(text);
    for (size_t i = 0; i < n; i++) {
        GMimePart *part;
        GMimeStream *ds;
        GMimeDataWrapper *dw;
        char fname[200];
        const char *name = parts[i].name != NULL && parts[i].name[0] ? parts[i].name : NULL;

        if (parts[i].der == NULL)
            continue;
        part = g_mime_part_new_with_type("application", "pkixcmp");
        if (answer_names) {
            if (cmpr_drop_answer_name(name != NULL ? name : "answer.pki", 1, fname, sizeof(fname)) != 0)
                snprintf(fname, sizeof(fname), "answer.rsp.pki");
        } else {
            snprintf(fname, sizeof(fname), "%s", name != NULL ? name : "request.pki");
        }
        for (char *c = fname; *c; c++)
            if (!isalnum((unsigned char)*c) && *c != '.' && *c != '-' && *c != '_')
                *c = '_';
        ds = g_mime_stream_mem_new_with_buffer((const char *)parts[i].der, parts[i].len);
        dw = g_mime_data_wrapper_new_with_stream(ds, GMIME_CONTENT_ENCODING_DEFAULT);
        g_mime_part_set_content(part, dw);
        g_object_unref(dw);
        g_object_unref(ds);
        g_mime_part_set_content_encoding(part, GMIME_CONTENT_ENCODING_BASE64);
        g_mime_part_set_filename(part, fname);
        g_mime_multipart_add(mixed, GMIME_OBJECT(part));
        g_object_unref(part);
    }
    g_mime_message_set_mime_part(msg, GMIME_OBJECT(mixed));
    g_object_unref(mixed);

    mem = g_mime_stream_mem_new();
    if (g_mime_object_write_to_stream(GMIME_OBJECT(msg), NULL, mem) >= 0) {
        arr = g_mime_stream_mem_get_byte_array(GMIME_STREAM_MEM(mem));
        if ((*out = malloc(arr->len + 1)) != NULL) {
            memcpy(*out, arr->data, arr->len);
            *out_len = arr->len;
            r = 0;
        }
    }
    g_object_unref(mem);
    g_object_unref(msg);
    return r;
}

int
cmpr_mail_build_reply(const struct cmpr_mail_in *m, const char *from,
                      const struct cmpr_mail_answer *answers, size_t n, const char *note,
                      unsigned char **out, size_t *out_len)
{
    GString *body;
    char subject[300];
    int r;

    *out = NULL;
    if (!cmpr_mail_addr_ok(from) || !cmpr_mail_addr_ok(m->from))
        return -1;
    snprintf(subject, sizeof(subject), "%s%s", strncasecmp(m->subject, "re:", 3) == 0 ? "" : "Re: ",
             m->subject[0] != '\0' ? m->subject : "CMP");
    body = g_string_new(NULL);
    if (note != NULL && note[0] != '\0')
        g_string_append_printf(body, "%s\n\n", note);
    for (size_t i = 0; i < n; i++)
        g_string_append_printf(body, "%s%s:\n%s\n\n", n > 1 ? "Message " : "Your message ",
                               answers[i].name != NULL ? answers[i].name : "", answers[i].text);
    g_string_append(body, "-- \ncmprouter (CMP, RFC 9810; messages by e-mail as in RFC 9483 6.4.2)\n");
    r = compose(from, m->from, subject, m->message_id, m->references, body->str, answers, n, 1,
                NULL, 0, out, out_len);
    g_string_free(body, TRUE);
    return r;
}

int
cmpr_mail_build_request(const char *from, const char *to, const char *subject,
                        const char *text, const unsigned char *der, size_t len, const char *name,
                        char *id_out, size_t id_len, unsigned char **out, size_t *out_len)
{
    struct cmpr_mail_answer part = { der, len, name, NULL };
    char subj[300];

    *out = NULL;
    if (!cmpr_mail_addr_ok(from) || !cmpr_mail_addr_ok(to))
        return -1;
    snprintf(subj, sizeof(subj), "%s", subject);
    for (char *c = subj; *c; c++)
        if ((unsigned char)*c < 0x20)
            *c = ' ';
    return compose(from, to, subj, "", "", text, &part, 1, 0, id_out, id_len, out, out_len);
}
