/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: a strict JSON parser for one line (see jsonline.h).
 *
 * Recursive descent, bounded by JL_MAX_DEPTH. Each token starts at its own
 * byte of the line, so there are never more tokens than bytes; each string
 * unescapes to no more bytes than it takes between its quotes, so with its
 * NUL every string fits in the scratch buffer when that holds len + 1 bytes,
 * and pointers into it never move during a parse.
 */
#include "jsonline.h"

#include "vfsd/util.h"

#include <errno.h>
#include <stdlib.h>

/* Byte classes inside a string: 0 is a byte copied as is. */
enum { C_PLAIN, C_QUOTE, C_ESCAPE, C_CONTROL, C_HIGH };

static const uint8_t string_class[256] = {
	[0x00 ... 0x1f] = C_CONTROL,
	['"'] = C_QUOTE,
	['\\'] = C_ESCAPE,
	[0x80 ... 0xff] = C_HIGH,
};

/* Objects with up to this many members are checked for duplicates pairwise. */
#define DUP_SCAN_MAX 16

struct ctx {
	struct jl_parser *p;
	const uint8_t *s; /* the line */
	const uint8_t *c; /* the cursor */
	const uint8_t *e; /* the end */
	char *d;	  /* the next free byte of the scratch buffer */
	bool nul;	  /* a \u0000 was unescaped */
};

static int parse_value(struct ctx *x, unsigned int depth);

static int fail(struct ctx *x, const uint8_t *at, const char *why)
{
	x->p->why = why;
	x->p->err_off = (size_t)(at - x->s);
	return -EBADMSG;
}

static int fail_end(struct ctx *x)
{
	return fail(x, x->e, "unexpected end of the line");
}

static __attribute__((noinline)) int grow_tok(struct jl_parser *p)
{
	size_t cap = p->cap_tok ? p->cap_tok * 2 : 256;
	struct jl_tok *t = reallocarray(p->tok, cap, sizeof(*t));

	if (!t)
		return -ENOMEM;
	p->tok = t;
	p->cap_tok = cap;
	return 0;
}

static inline int new_tok(struct ctx *x, enum jl_type type, uint32_t *ret)
{
	struct jl_parser *p = x->p;
	struct jl_tok *t;

	if (__builtin_expect(p->n_tok == p->cap_tok, 0) && grow_tok(p) < 0)
		return -ENOMEM;
	t = &p->tok[p->n_tok];
	t->type = (uint8_t)type;
	t->b = t->neg = false;
	t->n = 0;
	t->span = 1;
	t->off = (uint32_t)(x->c - x->s);
	t->u = 0;
	*ret = (uint32_t)p->n_tok++;
	return 0;
}

static void skip_ws(struct ctx *x)
{
	while (x->c < x->e && (*x->c == ' ' || *x->c == '\t' || *x->c == '\r' || *x->c == '\n'))
		x->c++;
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

/* The length of the UTF-8 sequence at @c (RFC 3629: shortest form, no surrogates), or 0. */
static size_t utf8_seq(const uint8_t *c, const uint8_t *e)
{
	uint8_t lo = 0x80, hi = 0xbf;
	size_t n;

	if (c[0] < 0xc2 || c[0] > 0xf4)
		return 0; /* a continuation byte, an overlong lead (c0, c1), or above U+10FFFF */
	if (c[0] < 0xe0) {
		n = 2;
	} else if (c[0] < 0xf0) {
		n = 3;
		if (c[0] == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c[0] == 0xed)
			hi = 0x9f; /* surrogates */
	} else {
		n = 4;
		if (c[0] == 0xf0)
			lo = 0x90; /* overlong */
		else if (c[0] == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	}
	if ((size_t)(e - c) < n || c[1] < lo || c[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((c[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

static int hex4(const uint8_t *c, const uint8_t *e, uint32_t *ret)
{
	uint32_t v = 0;

	if (e - c < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		uint8_t h = c[i];

		if (is_digit(h))
			v = v << 4 | (uint32_t)(h - '0');
		else if ((h | 0x20) >= 'a' && (h | 0x20) <= 'f')
			v = v << 4 | (uint32_t)((h | 0x20) - 'a' + 10);
		else
			return -1;
	}
	*ret = v;
	return 0;
}

static char *put_utf8(char *d, uint32_t cp)
{
	if (cp < 0x80) {
		*d++ = (char)cp;
	} else if (cp < 0x800) {
		*d++ = (char)(0xc0 | cp >> 6);
		*d++ = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*d++ = (char)(0xe0 | cp >> 12);
		*d++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*d++ = (char)(0x80 | (cp & 0x3f));
	} else {
		*d++ = (char)(0xf0 | cp >> 18);
		*d++ = (char)(0x80 | (cp >> 12 & 0x3f));
		*d++ = (char)(0x80 | (cp >> 6 & 0x3f));
		*d++ = (char)(0x80 | (cp & 0x3f));
	}
	return d;
}

/* The escape at *@cp (its backslash), written to *@dp; both advance. */
static int unescape(struct ctx *x, const uint8_t **cp, char **dp)
{
	static const char simple[256] = {
		['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
		['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
	};
	const uint8_t *c = *cp, *e = x->e;
	uint32_t u, lo = 0;

	if (e - c < 2)
		return fail_end(x);
	if (simple[c[1]]) {
		*(*dp)++ = simple[c[1]];
		*cp = c + 2;
		return 0;
	}
	if (c[1] != 'u')
		return fail(x, c, "invalid escape in a string");
	if (hex4(c + 2, e, &u) < 0)
		return fail(x, c, "invalid \\u escape (not 4 hex digits)");
	if (u >= 0xd800 && u <= 0xdbff) {
		/* a high surrogate: only with a low one right after it */
		if (e - c >= 8 && c[6] == '\\' && c[7] == 'u' && hex4(c + 8, e, &lo) < 0)
			return fail(x, c + 6, "invalid \\u escape (not 4 hex digits)");
		if (e - c < 12 || c[6] != '\\' || c[7] != 'u' || lo < 0xdc00 || lo > 0xdfff)
			return fail(x, c, "unpaired surrogate in a \\u escape");
		u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
		c += 6;
	} else if (u >= 0xdc00 && u <= 0xdfff) {
		return fail(x, c, "unpaired surrogate in a \\u escape");
	}
	x->nul |= u == 0;
	*dp = put_utf8(*dp, u);
	*cp = c + 6;
	return 0;
}

static int parse_string(struct ctx *x)
{
	const uint8_t *c = x->c + 1, *e = x->e;
	char *d = x->d;
	struct jl_tok *t;
	uint32_t i;
	int r = new_tok(x, JL_STRING, &i);

	if (r < 0)
		return r;
	for (;;) {
		while (c < e && string_class[*c] == C_PLAIN)
			*d++ = (char)*c++;
		if (c == e)
			return fail_end(x);
		switch (string_class[*c]) {
		case C_QUOTE:
			goto done;
		case C_ESCAPE:
			r = unescape(x, &c, &d);
			if (r < 0)
				return r;
			break;
		case C_CONTROL:
			return fail(x, c, "control character in a string (it must be escaped)");
		default: {
			size_t n = utf8_seq(c, e);

			if (n == 0)
				return fail(x, c, "invalid utf-8 string");
			memcpy(d, c, n);
			d += n;
			c += n;
			break;
		}
		}
	}
done:
	*d = 0;
	t = &x->p->tok[i];
	t->s = x->d;
	t->n = (uint32_t)(d - x->d);
	x->d = d + 1;
	x->c = c + 1;
	return 0;
}

static int parse_number(struct ctx *x)
{
	const uint8_t *c = x->c, *e = x->e;
	struct jl_tok *t;
	uint64_t u = 0;
	bool neg = false, integer = true;
	uint32_t i;
	int r;

	if (*c == '-') {
		neg = true;
		c++;
	}
	if (c == e || !is_digit(*c))
		return fail(x, c, "invalid number (no digit)");
	if (*c == '0') {
		if (++c < e && is_digit(*c))
			return fail(x, c - 1, "leading zero in a number");
	} else {
		for (; c < e && is_digit(*c); c++) {
			unsigned int dg = (unsigned int)(*c - '0');

			u = u > (UINT64_MAX - dg) / 10 ? UINT64_MAX : u * 10 + dg;
		}
	}
	if (c < e && *c == '.') {
		if (++c == e || !is_digit(*c))
			return fail(x, c, "invalid number (no digit after the '.')");
		while (c < e && is_digit(*c))
			c++;
		integer = false;
	}
	if (c < e && (*c == 'e' || *c == 'E')) {
		if (++c < e && (*c == '+' || *c == '-'))
			c++;
		if (c == e || !is_digit(*c))
			return fail(x, c, "invalid number (no digit in the exponent)");
		while (c < e && is_digit(*c))
			c++;
		integer = false;
	}
	r = new_tok(x, integer ? JL_INT : JL_FLOAT, &i);
	if (r < 0)
		return r;
	t = &x->p->tok[i];
	if (integer) {
		t->neg = neg;
		t->u = u;
	}
	x->c = c;
	return 0;
}

static int parse_literal(struct ctx *x, const char *word, size_t n, enum jl_type type, bool b)
{
	uint32_t i;
	int r;

	if ((size_t)(x->e - x->c) < n || memcmp(x->c, word, n) != 0)
		return fail(x, x->c, "invalid literal (not true, false or null)");
	r = new_tok(x, type, &i);
	if (r < 0)
		return r;
	x->p->tok[i].b = b;
	x->c += n;
	return 0;
}

static int key_cmp(const void *a, const void *b)
{
	const struct jl_key *k = a, *l = b;
	int c;

	if (k->n != l->n)
		return k->n < l->n ? -1 : 1;
	c = memcmp(k->s, l->s, k->n);
	if (c)
		return c;
	return k->idx < l->idx ? -1 : k->idx > l->idx;
}

static bool same_key(const struct jl_tok *k, const struct jl_tok *l)
{
	return k->n == l->n && memcmp(k->s, l->s, k->n) == 0;
}

/*
 * Report the first key (in document order) that an earlier key of object
 * @oi equals. Small objects are scanned pairwise; large ones sorted, so a
 * line of 10,000 keys costs n log n, not n^2.
 */
static int check_dups(struct ctx *x, uint32_t oi)
{
	struct jl_parser *p = x->p;
	const struct jl_tok *obj = &p->tok[oi], *k = obj + 1, *dup = NULL;
	uint32_t n = obj->n;

	if (n <= DUP_SCAN_MAX) {
		const struct jl_tok *keys[DUP_SCAN_MAX];

		for (uint32_t i = 0; i < n; i++, k = jl_next(k + 1)) {
			keys[i] = k;
			for (uint32_t j = 0; j < i && !dup; j++)
				if (same_key(keys[j], k))
					dup = k;
			if (dup)
				break;
		}
	} else {
		uint32_t first = UINT32_MAX;

		if (n > p->cap_keys) {
			struct jl_key *ks = reallocarray(p->keys, n, sizeof(*ks));

			if (!ks)
				return -ENOMEM;
			p->keys = ks;
			p->cap_keys = n;
		}
		for (uint32_t i = 0; i < n; i++, k = jl_next(k + 1))
			p->keys[i] = (struct jl_key){ k->s, k->n, (uint32_t)(k - p->tok) };
		qsort(p->keys, n, sizeof(*p->keys), key_cmp);
		for (uint32_t i = 1; i < n; i++)
			if (p->keys[i].n == p->keys[i - 1].n &&
			    memcmp(p->keys[i].s, p->keys[i - 1].s, p->keys[i].n) == 0)
				first = MIN(first, p->keys[i].idx);
		if (first != UINT32_MAX)
			dup = &p->tok[first];
	}
	if (!dup)
		return 0;
	p->dup = dup->s;
	p->dup_len = dup->n;
	return fail(x, x->s + dup->off, "duplicate key");
}

static int parse_object(struct ctx *x, unsigned int depth)
{
	struct jl_parser *p = x->p;
	const uint8_t *key;
	uint32_t i, n = 0;
	int r = new_tok(x, JL_OBJECT, &i);

	if (r < 0)
		return r;
	x->c++;
	skip_ws(x);
	if (x->c < x->e && *x->c == '}') {
		x->c++;
		return 0;
	}
	for (;;) {
		if (x->c == x->e)
			return fail_end(x);
		if (*x->c != '"')
			return fail(x, x->c, "expected a key in double quotes");
		key = x->c;
		x->nul = false;
		r = parse_string(x);
		if (r < 0)
			return r;
		/* C-string readers (json-c among them) would cut such a key short */
		if (x->nul)
			return fail(x, key, "a key with \\u0000 in it");
		skip_ws(x);
		if (x->c == x->e)
			return fail_end(x);
		if (*x->c != ':')
			return fail(x, x->c, "expected ':' after a key");
		x->c++;
		skip_ws(x);
		r = parse_value(x, depth + 1);
		if (r < 0)
			return r;
		n++;
		skip_ws(x);
		if (x->c == x->e)
			return fail_end(x);
		if (*x->c == '}')
			break;
		if (*x->c != ',')
			return fail(x, x->c, "expected ',' or '}' in an object");
		x->c++;
		skip_ws(x);
	}
	x->c++;
	p->tok[i].n = n;
	p->tok[i].span = (uint32_t)(p->n_tok - i);
	return n > 1 ? check_dups(x, i) : 0;
}

static int parse_array(struct ctx *x, unsigned int depth)
{
	struct jl_parser *p = x->p;
	uint32_t i, n = 0;
	int r = new_tok(x, JL_ARRAY, &i);

	if (r < 0)
		return r;
	x->c++;
	skip_ws(x);
	if (x->c < x->e && *x->c == ']') {
		x->c++;
		return 0;
	}
	for (;;) {
		r = parse_value(x, depth + 1);
		if (r < 0)
			return r;
		n++;
		skip_ws(x);
		if (x->c == x->e)
			return fail_end(x);
		if (*x->c == ']')
			break;
		if (*x->c != ',')
			return fail(x, x->c, "expected ',' or ']' in an array");
		x->c++;
		skip_ws(x);
	}
	x->c++;
	p->tok[i].n = n;
	p->tok[i].span = (uint32_t)(p->n_tok - i);
	return 0;
}

static int parse_value(struct ctx *x, unsigned int depth)
{
	if (x->c == x->e)
		return fail_end(x);
	if (depth > JL_MAX_DEPTH)
		return fail(x, x->c, "nesting too deep (more than 16 levels)");
	switch (*x->c) {
	case '{':
		return parse_object(x, depth);
	case '[':
		return parse_array(x, depth);
	case '"':
		return parse_string(x);
	case 't':
		return parse_literal(x, "true", 4, JL_BOOL, true);
	case 'f':
		return parse_literal(x, "false", 5, JL_BOOL, false);
	case 'n':
		return parse_literal(x, "null", 4, JL_NULL, false);
	case '-':
	case '0' ... '9':
		return parse_number(x);
	default:
		return fail(x, x->c, "unexpected character");
	}
}

void jl_init(struct jl_parser *p)
{
	memset(p, 0, sizeof(*p));
}

void jl_free(struct jl_parser *p)
{
	free(p->tok);
	free(p->scratch);
	free(p->keys);
	jl_init(p);
}

int jl_parse(struct jl_parser *p, const char *s, size_t len)
{
	struct ctx x = { .p = p, .s = (const uint8_t *)s, .c = (const uint8_t *)s };
	int r;

	p->n_tok = 0;
	p->why = NULL;
	p->err_off = 0;
	p->dup = NULL;
	p->dup_len = 0;
	if (len >= UINT32_MAX) { /* offsets and counts are 32-bit */
		p->why = "longer than 4 GiB";
		return -EBADMSG;
	}
	x.e = x.s + len;
	if (len + 1 > p->cap_scratch) {
		size_t cap = MAX(p->cap_scratch, (size_t)4096);
		char *n;

		while (cap < len + 1)
			cap *= 2;
		n = malloc(cap); /* nothing in it needs keeping */
		if (!n)
			return -ENOMEM;
		free(p->scratch);
		p->scratch = n;
		p->cap_scratch = cap;
	}
	x.d = p->scratch;
	skip_ws(&x);
	r = parse_value(&x, 1);
	if (r < 0)
		return r;
	skip_ws(&x);
	if (x.c != x.e)
		return fail(&x, x.c, "more after the value");
	return 0;
}

const char *jl_type_name(enum jl_type t)
{
	static const char *const names[] = {
		[JL_NULL] = "null",	[JL_BOOL] = "boolean",	[JL_INT] = "int",
		[JL_FLOAT] = "double",	[JL_STRING] = "string", [JL_ARRAY] = "array",
		[JL_OBJECT] = "object",
	};

	return (unsigned int)t < ARRAY_SIZE(names) ? names[t] : "?";
}
