/*-------------------------------------------------------------------------
 *
 * text.c
 *		Query text helpers: the statement's slice of a source string,
 *		cutting on a character boundary, normalization (constants become
 *		$n), the text-based pgsm_query_id and comment extraction: the SQL
 *		lexing rules of the C core, in one place.
 *
 * All of these run only when an entry is created, never for a statement
 * whose entry exists.  They use PostgreSQL's own SQL scanner, so a
 * constant, a comment or a quoted identifier is recognised exactly as
 * the server's parser recognised it.
 *
 *-------------------------------------------------------------------------
 */
#include "pgsm.h"

#include "common/keywords.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "parser/gramparse.h"
#include "parser/scanner.h"
#include "parser/scansup.h"

/* the statement's part of a multi-statement source, trimmed */
char *
pgsm_statement_text(const char *source, int location, int len, int *out_len)
{
	const char *s;

	if (source == NULL)
		return NULL;
	if (location >= 0 && location <= (int) strlen(source))
	{
		s = source + location;
		if (len <= 0)
			len = strlen(s);
	}
	else
	{
		s = source;
		len = strlen(s);
	}
	while (len > 0 && scanner_isspace(*s))
	{
		s++;
		len--;
	}
	while (len > 0 && (scanner_isspace(s[len - 1]) || s[len - 1] == ';'))
		len--;
	*out_len = len;
	return (char *) s;
}

/* a NUL-terminated copy of at most max_len bytes, never splitting a character */
char *
pgsm_cut_text(const char *text, int len, int max_len, int *out_len)
{
	int			keep = len;

	if (len > max_len)
		keep = pg_mbcliplen(text, len, max_len);
	*out_len = keep;
	return pnstrdup(text, keep);
}

static bool
is_constant(int token)
{
	return token == ICONST || token == FCONST || token == SCONST ||
		token == USCONST || token == BCONST || token == XCONST;
}

typedef void (*pgsm_token_fn) (void *arg, int token, int location, int length,
							   core_YYSTYPE *value);

/* run the SQL scanner over a NUL-terminated text, calling fn for each token */
static void
scan_all(char *src, pgsm_token_fn fn, void *arg)
{
	core_yy_extra_type yyextra;
	core_yyscan_t scanner;
	core_YYSTYPE yylval;
	YYLTYPE		yylloc;
	int			token;

	scanner = scanner_init(src, &yyextra, &ScanKeywords, ScanKeywordTokens);
	yyextra.escape_string_warning = false;
	while ((token = core_yylex(&yylval, &yylloc, scanner)) != 0)
	{
		/* flex ends the current token's text with a NUL in scanbuf */
		int			length = strlen(yyextra.scanbuf + yylloc);

		fn(arg, token, yylloc, length, &yylval);
	}
	scanner_finish(scanner);
}

/*
 * Scan a text, calling fn for each token.  The scanner may raise an error on
 * text it cannot read (the settings it depends on may differ from the
 * parse's): that error is caught and false is returned.  Never call this
 * inside an error report, where catching is not possible.
 */
static bool
scan_tokens(const char *text, int len, pgsm_token_fn fn, void *arg)
{
	char	   *src = pnstrdup(text, len);
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	PG_TRY();
	{
		scan_all(src, fn, arg);
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		FlushErrorState();
		ok = false;
	}
	PG_END_TRY();
	pfree(src);
	return ok;
}

/* ---- normalization ---- */

typedef struct NormalizeState
{
	const char *src;
	StringInfoData out;
	int			copied;			/* bytes of src already emitted */
	int			next_param;
	int			max_param;
} NormalizeState;

static void
find_max_param(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	NormalizeState *st = arg;

	if (token == PARAM && value->ival > st->max_param)
		st->max_param = value->ival;
}

static void
replace_constant(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	NormalizeState *st = arg;

	if (!is_constant(token) || location < st->copied)
		return;
	appendBinaryStringInfo(&st->out, st->src + st->copied, location - st->copied);
	appendStringInfo(&st->out, "$%d", st->next_param++);
	st->copied = location + length;
}

/* the text with each constant replaced by $n, numbered after any $n it has */
char *
pgsm_normalize(const char *text, int len, int *out_len)
{
	NormalizeState st;

	memset(&st, 0, sizeof(st));
	st.src = text;
	if (!scan_tokens(text, len, find_max_param, &st))
	{
		*out_len = len;
		return pnstrdup(text, len);
	}
	st.next_param = st.max_param + 1;
	initStringInfo(&st.out);
	if (!scan_tokens(text, len, replace_constant, &st))
	{
		*out_len = len;
		return pnstrdup(text, len);
	}
	appendBinaryStringInfo(&st.out, text + st.copied, len - st.copied);
	*out_len = st.out.len;
	return st.out.data;
}

/* ---- pgsm_query_id ---- */

typedef struct CanonState
{
	const char *src;
	StringInfoData out;
} CanonState;

static void
canon_token(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	CanonState *st = arg;

	if (st->out.len > 0)
		appendStringInfoChar(&st->out, ' ');
	if (is_constant(token) || token == PARAM)
		appendStringInfoChar(&st->out, '?');
	else if (token == IDENT)
		appendStringInfoString(&st->out, value->str);
	else
	{
		/* keywords and operators: their text, case-folded */
		int			i;

		for (i = 0; i < length; i++)
			appendStringInfoChar(&st->out, pg_ascii_tolower((unsigned char) st->src[location + i]));
	}
}

/*
 * A hash of the statement's tokens with constants and parameters as '?',
 * identifiers as the parser folds them and keywords in lower case: comments
 * and white space do not count, so the same SQL gets the same id in every
 * database and every cluster.
 */
uint64
pgsm_text_query_id(const char *text, int len)
{
	CanonState	st;
	uint64		id;

	st.src = text;
	initStringInfo(&st.out);
	if (!scan_tokens(text, len, canon_token, &st))
	{
		resetStringInfo(&st.out);
		appendBinaryStringInfo(&st.out, text, len);
	}
	id = pgsm_hash_bytes(st.out.data, st.out.len);
	pfree(st.out.data);
	return id;
}

/* ---- comments ---- */

/*
 * Comments are what the server's scanner skips between tokens: the gaps
 * between tokens (and after the last one) hold only white space and
 * comments, so a comment-like run inside a literal, a quoted identifier or
 * a dollar-quoted body is never taken for one.  One lexing policy: the
 * scanner's.
 */
typedef struct CommentState
{
	const char *src;
	int			gap_start;		/* end of the previous token */
	StringInfoData out;
} CommentState;

/* the end of a (nestable) block comment starting at s[i] */
static int
skip_block_comment(const char *s, int len, int i)
{
	int			depth = 0;

	while (i < len)
	{
		if (i + 1 < len && s[i] == '/' && s[i + 1] == '*')
		{
			depth++;
			i += 2;
		}
		else if (i + 1 < len && s[i] == '*' && s[i + 1] == '/')
		{
			i += 2;
			if (--depth == 0)
				return i;
		}
		else
			i++;
	}
	return len;
}

/* append the block comments of a gap (white space and comments only) */
static void
gap_comments(CommentState *st, int from, int to)
{
	const char *s = st->src;
	int			i = from;

	while (i < to)
	{
		if (s[i] == '-' && i + 1 < to && s[i + 1] == '-')
		{
			while (i < to && s[i] != '\n')
				i++;
		}
		else if (s[i] == '/' && i + 1 < to && s[i + 1] == '*')
		{
			int			end = skip_block_comment(s, to, i);

			if (st->out.len > 0)
				appendStringInfoString(&st->out, ", ");
			appendBinaryStringInfo(&st->out, s + i, end - i);
			i = end;
		}
		else
			i++;
	}
}

static void
comment_gap(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	CommentState *st = arg;

	if (location > st->gap_start)
		gap_comments(st, st->gap_start, location);
	st->gap_start = Max(st->gap_start, location + length);
}

/*
 * The statement's block comments, joined by ", ", or NULL if it has none
 * (or the scanner cannot read it).  Not for error reports (it scans).
 */
char *
pgsm_extract_comments_of(const char *s, int len)
{
	CommentState st;

	st.src = s;
	st.gap_start = 0;
	initStringInfo(&st.out);
	if (!scan_tokens(s, len, comment_gap, &st))
	{
		pfree(st.out.data);
		return NULL;
	}
	if (st.gap_start < len)
		gap_comments(&st, st.gap_start, len);
	if (st.out.len == 0)
	{
		pfree(st.out.data);
		return NULL;
	}
	return st.out.data;
}
