/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Unit tests for the one-line JSON parser of the state reader
 * (src/state/jsonline.c): what it accepts, the tokens it produces, and every
 * class of input it must reject.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../src/state/jsonline.h"
#include "vfsd/util.h"

static struct jl_parser p;

static void setup(void)
{
	jl_init(&p);
}

static void teardown(void)
{
	jl_free(&p);
}

TestSuite(jsonline, .init = setup, .fini = teardown);

/* Parse @len bytes; they must be accepted. Returns the top-level token. */
static const struct jl_tok *ok_n(const char *s, size_t len)
{
	int r = jl_parse(&p, s, len);

	cr_assert_eq(r, 0, "rejected %.*s: %s at %zu", (int)len, s, p.why ? p.why : "?", p.err_off);
	cr_assert_gt(p.n_tok, 0);
	return &p.tok[0];
}

static const struct jl_tok *ok(const char *s)
{
	return ok_n(s, strlen(s));
}

/* @len bytes must be rejected with @why in the reason, at byte @off (or anywhere if -1). */
static void bad_n(const char *s, size_t len, const char *why, long off)
{
	int r = jl_parse(&p, s, len);

	cr_assert_eq(r, -EBADMSG, "accepted %.*s (expected \"%s\")", (int)len, s, why);
	cr_assert_not_null(p.why);
	cr_assert(strstr(p.why, why), "%.*s: reason \"%s\" lacks \"%s\"", (int)len, s, p.why, why);
	if (off >= 0)
		cr_assert_eq(p.err_off, (size_t)off, "%.*s: %s at byte %zu, not %ld", (int)len, s,
			     p.why, p.err_off, off);
}

static void bad(const char *s, const char *why, long off)
{
	bad_n(s, strlen(s), why, off);
}

static const struct jl_tok *member(const struct jl_tok *obj, const char *key)
{
	return jl_member(obj, key, strlen(key));
}

/* ---- what it accepts ---------------------------------------------------------------------- */

Test(jsonline, object_tokens_and_lookup)
{
	const struct jl_tok *o =
	    ok("{\"a\":1,\"bb\":[true,false,null],\"c\":{\"d\":\"x\"},\"e\":-2}");
	const struct jl_tok *v, *arr, *c;

	cr_assert_eq(o->type, JL_OBJECT);
	cr_assert_eq(o->n, 4);
	cr_assert_eq(o->span, p.n_tok);
	cr_assert_eq(p.n_tok, 1 + 2 + 2 + 3 + 2 + 2 + 2);

	v = member(o, "a");
	cr_assert_eq(v->type, JL_INT);
	cr_assert_eq(v->u, 1);
	cr_assert_not(v->neg);

	arr = member(o, "bb");
	cr_assert_eq(arr->type, JL_ARRAY);
	cr_assert_eq(arr->n, 3);
	cr_assert_eq(arr->span, 4);
	cr_assert_eq(arr[1].type, JL_BOOL);
	cr_assert(arr[1].b);
	cr_assert_eq(jl_next(&arr[1])->type, JL_BOOL);
	cr_assert_not(arr[2].b);
	cr_assert_eq(arr[3].type, JL_NULL);

	c = member(o, "c");
	cr_assert_eq(c->type, JL_OBJECT);
	cr_assert_eq(c->span, 3);
	cr_assert_str_eq(member(c, "d")->s, "x");
	cr_assert_null(member(c, "a"), "lookups stay inside their object");

	v = member(o, "e");
	cr_assert_eq(v->type, JL_INT);
	cr_assert(v->neg);
	cr_assert_eq(v->u, 2);
	cr_assert_null(member(o, "f"));
	cr_assert_null(member(o, "b"), "a prefix of a key is not the key");
	cr_assert_null(member(o, "aa"));
	cr_assert_eq(member(o, "a")->off, 5);
}

Test(jsonline, scalars_at_the_top)
{
	cr_assert_eq(ok("7")->type, JL_INT);
	cr_assert_eq(ok("\"s\"")->type, JL_STRING);
	cr_assert_eq(ok("true")->type, JL_BOOL);
	cr_assert_eq(ok("null")->type, JL_NULL);
	cr_assert_eq(ok("[]")->type, JL_ARRAY);
	cr_assert_eq(ok("{}")->n, 0);
	cr_assert_eq(ok("[]")->span, 1);
}

Test(jsonline, whitespace)
{
	const struct jl_tok *o = ok(" \t\r\n{ \"a\" :\t1 ,\r\n\"b\"\t:[ 1 , 2 ] } \t\r\n");

	cr_assert_eq(o->n, 2);
	cr_assert_eq(member(o, "b")->n, 2);
	cr_assert_eq(ok("  []  ")->type, JL_ARRAY);
	/* RFC 8259 whitespace is those four; not form feed, vertical tab or NBSP */
	bad("\f{}", "unexpected character", 0);
	bad("{\v}", "expected a key", 1);
	bad("{}\f", "more after the value", 2);
	bad("{\"a\":\xc2\xa0 1}", "unexpected character", 5);
	bad("", "unexpected end of the line", 0);
	bad("   ", "unexpected end of the line", 3);
}

Test(jsonline, strings_and_escapes)
{
	const struct jl_tok *o = ok("{\"\":\"\",\"e\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\","
				    "\"u\":\"\\u00e9\\u00E9\\u20ac\\u0041\",\"raw\":\"é€😀\x7f\"}");
	const struct jl_tok *v;

	v = member(o, "");
	cr_assert_not_null(v, "the empty key is a key");
	cr_assert_eq(v->type, JL_STRING);
	cr_assert_eq(v->n, 0);
	cr_assert_str_eq(v->s, "");
	v = member(o, "e");
	cr_assert_eq(v->n, 8);
	cr_assert_eq(memcmp(v->s, "\"\\/\b\f\n\r\t", 9), 0, "unescaped and NUL-terminated");
	v = member(o, "u");
	cr_assert_str_eq(v->s, "\xc3\xa9\xc3\xa9\xe2\x82\xac"
			       "A");
	v = member(o, "raw");
	cr_assert_str_eq(v->s, "é€😀\x7f");
}

Test(jsonline, nul_in_values_but_not_in_keys)
{
	const struct jl_tok *v = ok("\"a\\u0000b\"");

	/* a value may hold NUL; the length says so, and the reader refuses it in names */
	cr_assert_eq(v->n, 3);
	cr_assert_eq(memcmp(v->s, "a\0b", 4), 0);
	bad("{\"name\\u0000x\":1}", "a key with \\u0000", 1);
	bad("{\"a\":{\"\\u0000\":1}}", "a key with \\u0000", 6);
	bad("[\"\\u0000\",{\"k\\u0000\":0}]", "a key with \\u0000", 11);
	/* a raw NUL byte is a control character, in a key or a value */
	bad_n("{\"a\":\"x\0\"}", 10, "control character", 7);
	bad_n("{\"a\0\":1}", 8, "control character", 3);
	bad_n("{\"a\":1}\0", 8, "more after the value", 7);
}

Test(jsonline, surrogate_pairs)
{
	const struct jl_tok *v = ok("\"\\ud83d\\ude00|\\uD800\\uDC00|\\udbff\\udfff\"");

	cr_assert_str_eq(v->s, "\xf0\x9f\x98\x80|\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf");
	cr_assert_eq(v->n, 14);
}

Test(jsonline, numbers)
{
	const struct jl_tok *v;

	v = ok("0");
	cr_assert_eq(v->type, JL_INT);
	cr_assert_eq(v->u, 0);
	v = ok("-0");
	cr_assert_eq(v->type, JL_INT);
	cr_assert(v->neg);
	cr_assert_eq(v->u, 0);
	v = ok("18446744073709551614");
	cr_assert_eq(v->u, UINT64_MAX - 1);
	v = ok("18446744073709551615");
	cr_assert_eq(v->u, UINT64_MAX);
	/* too big for 64 bits: saturated, so range checks refuse it */
	v = ok("18446744073709551616");
	cr_assert_eq(v->type, JL_INT);
	cr_assert_eq(v->u, UINT64_MAX);
	v = ok("99999999999999999999999999999999999999999999999999999999999999999999");
	cr_assert_eq(v->u, UINT64_MAX);
	v = ok("-99999999999999999999");
	cr_assert(v->neg);
	cr_assert_eq(v->u, UINT64_MAX);
	v = ok("123456789012");
	cr_assert_eq(v->u, 123456789012ull);
	/* anything with a fraction or exponent is not an integer */
	cr_assert_eq(ok("1.0")->type, JL_FLOAT);
	cr_assert_eq(ok("2e0")->type, JL_FLOAT);
	cr_assert_eq(ok("-0.5E+10")->type, JL_FLOAT);
	cr_assert_eq(ok("0e-7")->type, JL_FLOAT);
	cr_assert_eq(ok("[1,-1,1.5]")->n, 3);
}

Test(jsonline, depth_16_and_no_more)
{
	char buf[128];
	size_t n = 0;

	/* 15 arrays in an object, with a number inside: 17 levels, the number too deep */
	buf[n++] = '{';
	memcpy(buf + n, "\"a\":", 4);
	n += 4;
	for (int i = 0; i < 15; i++)
		buf[n++] = '[';
	buf[n++] = '1';
	for (int i = 0; i < 15; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	bad_n(buf, n, "nesting too deep", 20);

	/* 14 arrays and the number: 16 levels */
	ok("{\"a\":[[[[[[[[[[[[[[1]]]]]]]]]]]]]]}");
	/* 16 containers, the innermost empty: 16 levels */
	ok("{\"a\":[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]}");
	ok("[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]");
	bad("[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]", "nesting too deep", 16);
	bad("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
	    "{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}}}}}}}}}}}",
	    "nesting too deep", 80);

	/* very deep input fails fast, without recursing that deep */
	char deep[100000];

	memset(deep, '[', sizeof(deep));
	bad_n(deep, sizeof(deep), "nesting too deep", 16);
}

Test(jsonline, buffers_are_reused)
{
	const char *line = "{\"kind\":\"inode\",\"id\":12,\"nlookup\":1,\"type\":\"reg\","
			   "\"parent\":2,\"name\":\"f\\u00e9.txt\",\"ino\":1234}";
	struct jl_tok *tok;
	char *scratch;
	size_t cap_tok, cap_scratch;

	ok(line);
	tok = p.tok;
	scratch = p.scratch;
	cap_tok = p.cap_tok;
	cap_scratch = p.cap_scratch;
	for (int i = 0; i < 1000; i++) {
		const struct jl_tok *o = ok(line);

		cr_assert_str_eq(member(o, "name")->s, "f\xc3\xa9.txt");
	}
	cr_assert_eq(p.tok, tok, "no new token array per line");
	cr_assert_eq(p.scratch, scratch, "no new scratch buffer per line");
	cr_assert_eq(p.cap_tok, cap_tok);
	cr_assert_eq(p.cap_scratch, cap_scratch);

	/* a big line grows them, and a failed parse leaves the parser usable */
	char *big = malloc(256 * 1024);
	size_t n = 0;

	big[n++] = '[';
	for (int i = 0; i < 50000; i++)
		n += (size_t)sprintf(big + n, "%s\"%d\"", i ? "," : "", i % 10);
	big[n++] = ']';
	cr_assert_eq(ok_n(big, n)->n, 50000);
	cr_assert_eq(p.n_tok, 50001);
	bad_n(big, n - 1, "unexpected end of the line", (long)n - 1);
	cr_assert_eq(ok(line)->n, 7);
	free(big);
}

/* ---- what it rejects ---------------------------------------------------------------------- */

Test(jsonline, trailing_garbage)
{
	bad("{} x", "more after the value", 3);
	bad("{}{}", "more after the value", 2);
	bad("{\"a\":1}}", "more after the value", 7);
	bad("1 2", "more after the value", 2);
	bad("{\"a\":1} // c", "more after the value", 8);
	bad("[1]/*c*/", "more after the value", 3);
	bad("truex", "more after the value", 4);
	bad("{\"a\":1}\xc3\xa9", "more after the value", 7);
}

Test(jsonline, truncated)
{
	bad("{", "unexpected end of the line", 1);
	bad("{\"a\"", "unexpected end of the line", 4);
	bad("{\"a\":", "unexpected end of the line", 5);
	bad("{\"a\":1", "unexpected end of the line", 6);
	bad("{\"a\":1,", "unexpected end of the line", 7);
	bad("[1,", "unexpected end of the line", 3);
	bad("\"abc", "unexpected end of the line", 4);
	bad("\"abc\\", "unexpected end of the line", 5);
	bad("\"\\u00", "invalid \\u escape", 1);
	bad("\"\xc3", "invalid utf-8", 1);
}

Test(jsonline, structure)
{
	bad("{\"a\":[1,]}", "unexpected character", 8);
	bad("{\"a\":1,}", "expected a key", 7);
	bad("{,}", "expected a key", 1);
	bad("[,1]", "unexpected character", 1);
	bad("{'a':1}", "expected a key", 1);
	bad("{a:1}", "expected a key", 1);
	bad("{\"a\" 1}", "expected ':'", 5);
	bad("{\"a\"::1}", "unexpected character", 5);
	bad("{\"a\":1 \"b\":2}", "expected ',' or '}'", 7);
	bad("[1 2]", "expected ',' or ']'", 3);
	bad("{\"a\":1]", "expected ',' or '}'", 6);
	bad("[1}", "expected ',' or ']'", 2);
	bad("{\"a\":tru}", "invalid literal", 5);
	bad("{\"a\":nul}", "invalid literal", 5);
	bad("{\"a\":fals}", "invalid literal", 5);
	bad("{\"a\":True}", "unexpected character", 5);
	bad("{\"a\":NaN}", "unexpected character", 5);
	bad("{\"a\":Infinity}", "unexpected character", 5);
	bad("{\"a\":undefined}", "unexpected character", 5);
	bad("{\"a\":'x'}", "unexpected character", 5);
}

Test(jsonline, bad_numbers)
{
	bad("01", "leading zero", 0);
	bad("-01", "leading zero", 1);
	bad("00", "leading zero", 0);
	bad("{\"a\":007}", "leading zero", 5);
	bad("[0,01]", "leading zero", 3);
	bad("1.", "no digit after the '.'", 2);
	bad("1.e5", "no digit after the '.'", 2);
	bad(".5", "unexpected character", 0);
	bad("+1", "unexpected character", 0);
	bad("-", "no digit", 1);
	bad("-a", "no digit", 1);
	bad("--1", "no digit", 1);
	bad("- 1", "no digit", 1);
	bad("1e", "no digit in the exponent", 2);
	bad("1e+", "no digit in the exponent", 3);
	bad("1E-x", "no digit in the exponent", 3);
	bad("0x1f", "more after the value", 1);
	bad("-Infinity", "no digit", 1);
	bad("1_000", "more after the value", 1);
}

Test(jsonline, bad_escapes)
{
	bad("\"\\x\"", "invalid escape", 1);
	bad("\"\\'\"", "invalid escape", 1);
	bad("\"\\a\"", "invalid escape", 1);
	bad("\"\\0\"", "invalid escape", 1);
	bad("\"\\U0041\"", "invalid escape", 1);
	bad("\"ab\\ \"", "invalid escape", 3);
	bad("\"\\u12\"", "invalid \\u escape", 1);
	bad("\"\\u12G4\"", "invalid \\u escape", 1);
	bad("\"\\u-123\"", "invalid \\u escape", 1);
	bad("\"\\u 123\"", "invalid \\u escape", 1);
	bad("{\"k\\q\":1}", "invalid escape", 3);
}

Test(jsonline, unpaired_surrogates)
{
	bad("\"\\ud800\"", "unpaired surrogate", 1);
	bad("\"\\udbff\"", "unpaired surrogate", 1);
	bad("\"\\udc00\"", "unpaired surrogate", 1);
	bad("\"\\udfff\"", "unpaired surrogate", 1);
	bad("\"x\\ud800y\"", "unpaired surrogate", 2);
	bad("\"\\ud800\\u0041\"", "unpaired surrogate", 1);
	bad("\"\\ud800\\ud800\"", "unpaired surrogate", 1);
	bad("\"\\ud800\\n\"", "unpaired surrogate", 1);
	bad("\"\\ud800\\u12\"", "invalid \\u escape", 7);
	bad("\"\\ude00\\ud83d\"", "unpaired surrogate", 1);
	bad("\"\\ud83d\\ude00\\ude00\"", "unpaired surrogate", 13);
	/* the surrogate as raw UTF-8 bytes is invalid UTF-8 */
	bad("\"\xed\xa0\x80\"", "invalid utf-8", 1);
}

Test(jsonline, control_characters_in_strings)
{
	for (int c = 1; c < 0x20; c++) {
		char s[8];

		snprintf(s, sizeof(s), "\"a%cb\"", c);
		bad(s, "control character", 2);
	}
	bad("{\"a\tb\":1}", "control character", 3);
	ok("\"\x7f\"");
	ok("\"\\u001f\\u0001\"");
}

Test(jsonline, invalid_utf8)
{
	static const char *const cases[] = {
		"\x80",		    /* a lone continuation byte */
		"\xbf",		    /* another */
		"\xc0\x80",	    /* overlong NUL */
		"\xc1\xbf",	    /* overlong DEL */
		"\xe0\x80\x80",	    /* overlong, 3 bytes */
		"\xe0\x9f\xbf",	    /* overlong U+07FF */
		"\xf0\x80\x80\x80", /* overlong, 4 bytes */
		"\xf0\x8f\xbf\xbf", /* overlong U+FFFF */
		"\xed\xa0\x80",	    /* U+D800 */
		"\xed\xbf\xbf",	    /* U+DFFF */
		"\xf4\x90\x80\x80", /* U+110000 */
		"\xf5\x80\x80\x80", /* lead byte above U+10FFFF */
		"\xf8\x88\x80\x80\x80",
		"\xfe",
		"\xff",
		"\xc3",		/* truncated */
		"\xe2\x82",	/* truncated */
		"\xf0\x9f\x98", /* truncated */
		"\xc3\x28",	/* bad continuation */
		"\xe2\x28\xa1",
		"\xe2\x82\x28",
		"\xf0\x9f\x28\x80",
		"\xf0\x9f\x98\x28",
	};
	char s[32];

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		snprintf(s, sizeof(s), "\"ab%s\"", cases[i]);
		bad(s, "invalid utf-8", 3);
		snprintf(s, sizeof(s), "{\"%s\":1}", cases[i]);
		bad(s, "invalid utf-8", 2);
	}
	/* the edges that are fine */
	ok("\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf\"");
	ok("\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
	/* outside strings, any byte above 0x7f is out of place */
	bad("{\"a\":1,\xc3\xa9}", "expected a key", 7);
	bad("\xef\xbb\xbf{}", "unexpected character", 0); /* no byte-order mark either */
}

Test(jsonline, duplicate_keys)
{
	bad("{\"a\":1,\"a\":2}", "duplicate key", 7);
	cr_assert_eq(p.dup_len, 1);
	cr_assert_eq(memcmp(p.dup, "a", 1), 0);
	/* compared after unescaping */
	bad("{\"id\":1,\"i\\u0064\":2}", "duplicate key", 8);
	cr_assert_eq(p.dup_len, 2);
	cr_assert_eq(memcmp(p.dup, "id", 2), 0);
	bad("{\"\":1,\"\":2}", "duplicate key", 6);
	cr_assert_eq(p.dup_len, 0);
	/* whatever the values, and the first repeat is the one reported */
	bad("{\"b\":{},\"a\":[1],\"c\":null,\"a\":\"x\",\"b\":2}", "duplicate key", 25);
	cr_assert_eq(memcmp(p.dup, "a", 1), 0);
	/* nested objects are checked too; the same key in different objects is fine */
	bad("{\"x\":{\"k\":1,\"k\":1}}", "duplicate key", 12);
	bad("[{},{\"k\":1,\"k\":1}]", "duplicate key", 11);
	ok("{\"a\":{\"a\":{\"a\":1}},\"b\":[{\"a\":1},{\"a\":2}]}");
	ok("{\"a\":1,\"A\":2,\"a \":3,\"ab\":4,\"b\":5}");
	cr_assert_eq(p.dup, NULL);
	/* a valid line after a duplicate one: the report does not linger */
	cr_assert_null(p.why);
}

Test(jsonline, duplicate_keys_in_big_objects)
{
	char *s = malloc(1 << 20);
	size_t n;

	/* 20,000 distinct keys: accepted, and without n^2 comparisons */
	n = 0;
	s[n++] = '{';
	for (int i = 0; i < 20000; i++)
		n += (size_t)sprintf(s + n, "%s\"k%d\":%d", i ? "," : "", i, i);
	s[n++] = '}';
	cr_assert_eq(ok_n(s, n)->n, 20000);

	/* the same with one repeat near the end; the repeat is what is reported */
	n--;
	n += (size_t)sprintf(s + n, ",\"zz\":0,\"k17\":1,\"zz\":2}");
	bad_n(s, n, "duplicate key", -1);
	cr_assert_eq(p.dup_len, 3);
	cr_assert_eq(memcmp(p.dup, "k17", 3), 0);
	cr_assert_eq(memcmp(s + p.err_off, "\"k17\":1", 7), 0);

	/* 17 members, just past the pairwise scan: the sort finds the first repeat */
	bad("{\"a\":0,\"b\":0,\"c\":0,\"d\":0,\"e\":0,\"f\":0,\"g\":0,\"h\":0,\"i\":0,\"j\":0,"
	    "\"k\":0,\"l\":0,\"m\":0,\"n\":0,\"c\":0,\"b\":0,\"p\":0}",
	    "duplicate key", 85);
	cr_assert_eq(memcmp(p.dup, "c", 1), 0);
	free(s);
}

Test(jsonline, type_names_as_json_c_spells_them)
{
	cr_assert_str_eq(jl_type_name(JL_NULL), "null");
	cr_assert_str_eq(jl_type_name(JL_BOOL), "boolean");
	cr_assert_str_eq(jl_type_name(JL_INT), "int");
	cr_assert_str_eq(jl_type_name(JL_FLOAT), "double");
	cr_assert_str_eq(jl_type_name(JL_STRING), "string");
	cr_assert_str_eq(jl_type_name(JL_ARRAY), "array");
	cr_assert_str_eq(jl_type_name(JL_OBJECT), "object");
}
