/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * state: a strict JSON parser for one line of a state blob.
 *
 * jl_parse() turns one JSON text (RFC 8259, nothing more) into a flat array
 * of tokens in document order: a container is followed by its members (an
 * object by key, value, key, value, ...), and every token knows how many
 * tokens its value spans, so skipping a value is one addition and looking a
 * key up in an object is a short linear scan. Strings are unescaped into a
 * scratch buffer, NUL-terminated (they may contain NUL from "\u0000"; the
 * length is what counts). Token array and scratch buffer belong to the
 * parser and are reused line after line: once they have grown to the
 * largest line seen, parsing allocates nothing.
 *
 * Rejected, with a reason and the byte offset: anything but one value with
 * optional whitespace (space, tab, CR, LF) around it; leading zeros, "1.",
 * ".5", "+1", NaN and the like; escapes other than the eight of RFC 8259
 * and \uXXXX; a \u escape of a surrogate that is not part of a pair;
 * control characters (below 0x20) in strings; invalid UTF-8 (overlong
 * forms, surrogates, above U+10FFFF, truncated sequences); values nested
 * deeper than JL_MAX_DEPTH (the top-level value is depth 1); the same key
 * twice in one object, compared after unescaping; and a key with "\u0000"
 * in it (readers that keep keys as C strings would see a shorter key, and
 * perhaps a duplicate where we see none). In values "\u0000" is fine.
 */
#ifndef VFSD_STATE_JSONLINE_H
#define VFSD_STATE_JSONLINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The deepest value: json-c's depth 16 as the reader used it (a scalar counts as a level). */
#define JL_MAX_DEPTH 16

enum jl_type {
	JL_NULL,
	JL_BOOL,
	JL_INT,	  /* a number without fraction or exponent */
	JL_FLOAT, /* any other number; its value is not kept */
	JL_STRING,
	JL_ARRAY,
	JL_OBJECT,
};

struct jl_tok {
	uint8_t type;  /* enum jl_type */
	bool b;	       /* JL_BOOL: the value */
	bool neg;      /* JL_INT: written with a minus sign ("-0" too) */
	uint32_t n;    /* JL_STRING: bytes; JL_ARRAY: elements; JL_OBJECT: members */
	uint32_t span; /* tokens in this value, itself and everything inside it */
	uint32_t off;  /* byte offset of the value in the line */
	union {
		const char *s; /* JL_STRING: unescaped, NUL-terminated (may hold NUL) */
		uint64_t u;    /* JL_INT: the magnitude; UINT64_MAX when it does not fit */
	};
};

struct jl_key {
	const char *s;
	uint32_t n;
	uint32_t idx;
};

struct jl_parser {
	struct jl_tok *tok;
	size_t n_tok, cap_tok;
	char *scratch;
	size_t cap_scratch;
	struct jl_key *keys; /* duplicate-key checks */
	size_t cap_keys;

	/* After -EBADMSG: what, and where. */
	const char *why;
	size_t err_off;
	const char *dup; /* a duplicate key (then why is "duplicate key"), in the scratch buffer */
	size_t dup_len;
};

/* jl_init() - an empty parser; a zeroed struct is one too. */
void jl_init(struct jl_parser *p);

/* jl_free() - release what the parser holds; it can be used again after jl_init(). */
void jl_free(struct jl_parser *p);

/*
 * jl_parse() - parse @len bytes at @s as one JSON text. Returns 0 (the
 * tokens are p->tok[0 .. p->n_tok), the top-level value first), -EBADMSG
 * (p->why, p->err_off, and for a duplicate key p->dup) or -ENOMEM. The tokens
 * and strings stay valid until the next jl_parse() or jl_free().
 */
int jl_parse(struct jl_parser *p, const char *s, size_t len);

/* jl_type_name() - as json-c names types: "null", "boolean", "int", "double", ... */
const char *jl_type_name(enum jl_type t);

/* jl_next() - the token after @t and everything inside it (the next sibling). */
static inline const struct jl_tok *jl_next(const struct jl_tok *t)
{
	return t + t->span;
}

/* jl_member() - the value of @key (@klen bytes, NUL-terminated) in object @obj, or NULL. */
static inline const struct jl_tok *jl_member(const struct jl_tok *obj, const char *key, size_t klen)
{
	const struct jl_tok *k = obj + 1;

	for (uint32_t i = 0; i < obj->n; i++, k = jl_next(k + 1))
		if (k->n == klen && k->s[0] == key[0] && memcmp(k->s, key, klen) == 0)
			return k + 1;
	return NULL;
}

#endif
