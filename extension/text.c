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
/* set while this backend runs the scanner again: its notices are not repeated */
bool		pgsm_scanning = false;

static bool
scan_tokens(const char *text, int len, pgsm_token_fn fn, void *arg)
{
	char	   *src = pnstrdup(text, len);
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	pgsm_scanning = true;
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
	pgsm_scanning = false;
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
	bool		keep_constants; /* a utility statement's: never normalized */
	StringInfoData out;
} CanonState;

static void
canon_token(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	CanonState *st = arg;

	if (st->out.len > 0)
		appendStringInfoChar(&st->out, ' ');
	if ((is_constant(token) && !st->keep_constants) || token == PARAM)
		appendStringInfoChar(&st->out, '?');
	else if (is_constant(token))
		appendBinaryStringInfo(&st->out, st->src + location, length);
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
static uint64
canon_query_id(const char *text, int len, bool keep_constants)
{
	CanonState	st;
	uint64		id;

	st.src = text;
	st.keep_constants = keep_constants;
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

uint64
pgsm_text_query_id(const char *text, int len)
{
	return canon_query_id(text, len, false);
}

/*
 * A utility statement's: the same, with its constants kept, as its text is
 * never normalized (SET work_mem = 64 and = 128 are two statements, and a
 * DO block's body is its meaning).
 */
uint64
pgsm_utility_query_id(const char *text, int len)
{
	return canon_query_id(text, len, true);
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

/* ---- the distributed-statistics tag ---- */

#define PGSM_TAG_HEAD "/*pgsm_coord='"
#define PGSM_TAG_MID "',pgsm_qid='"
#define PGSM_TAG_TAIL "'*/"

/* the end of the last token of a text; -1 when the scanner cannot read it */
static void
last_token_end(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	int		   *end = arg;

	*end = Max(*end, location + length);
}

/*
 * Whether white space and whole comments lead from 'from' to exactly 'to':
 * the tag then starts a comment of its own, not inside a -- comment or
 * another block comment.
 */
static bool
gap_reaches(const char *s, int from, int to)
{
	int			i = from;

	while (i < to)
	{
		if (s[i] == '-' && s[i + 1] == '-')
		{
			while (i < to && s[i] != '\n')
				i++;
			if (i >= to)
				return false;
		}
		else if (s[i] == '/' && s[i + 1] == '*')
			i = skip_block_comment(s, to, i);
		else if (scanner_isspace(s[i]))
			i++;
		else
			return false;
	}
	return i == to;
}

/* a node name of the tag: [A-Za-z0-9_.-]{1,NAMEDATALEN-1} */
static bool
parse_tag_name(const char *s, int len, char *name)
{
	int			i;

	if (len < 1 || len >= NAMEDATALEN)
		return false;
	for (i = 0; i < len; i++)
	{
		char		c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-'))
			return false;
	}
	memcpy(name, s, len);
	name[len] = '\0';
	return true;
}

/* a signed decimal int64 of exactly 'len' characters */
static bool
parse_tag_qid(const char *s, int len, int64 *qid)
{
	char		buf[32];
	char	   *end;
	int			i;

	if (len < 1 || len > 20)
		return false;
	for (i = 0; i < len; i++)
		if (!(isdigit((unsigned char) s[i]) || (i == 0 && s[i] == '-' && len > 1)))
			return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*qid = strtoi64(buf, &end, 10);
	return errno == 0 && *end == '\0';
}

/*
 * Whether a statement is a fragment: its text ends with a tag
 *		/\*pgsm_coord='<name>',pgsm_qid='<signed decimal>'*\/
 * that is the trailing comment after its last token (never a comment-like
 * run inside a literal, nor an earlier comment).  Cheap for the usual
 * statement, which does not end with "'*\/"; runs the scanner only for a
 * text that ends with a well-formed tag.  Not for error reports.
 */
bool
pgsm_text_tag(const char *s, int len, PgsmTag *tag)
{
	int			head = (int) strlen(PGSM_TAG_HEAD);
	int			start = -1;
	int			i,
				name_end,
				end = -1;

	if (len < 32 || memcmp(s + len - 3, PGSM_TAG_TAIL, 3) != 0)
		return false;
	for (i = len - head; i >= 0; i--)
	{
		if (memcmp(s + i, PGSM_TAG_HEAD, head) == 0)
		{
			start = i;
			break;
		}
	}
	if (start < 0)
		return false;
	name_end = start + head;
	while (name_end < len && s[name_end] != '\'')
		name_end++;
	if (name_end + (int) strlen(PGSM_TAG_MID) > len - 3 ||
		memcmp(s + name_end, PGSM_TAG_MID, strlen(PGSM_TAG_MID)) != 0 ||
		!parse_tag_name(s + start + head, name_end - start - head, tag->coordinator) ||
		!parse_tag_qid(s + name_end + strlen(PGSM_TAG_MID),
					   len - 3 - name_end - (int) strlen(PGSM_TAG_MID), &tag->parent_queryid))
		return false;
	if (!scan_tokens(s, len, last_token_end, &end) || end > start ||
		!gap_reaches(s, Max(end, 0), start))
		return false;
	tag->tag_start = start;
	return true;
}

/* the query of a DECLARE ... CURSOR ... FOR <query>: its offset, or -1 */
typedef struct CursorQueryState
{
	int			offset;
	bool		after_for;
} CursorQueryState;

static void
cursor_query_token(void *arg, int token, int location, int length, core_YYSTYPE *value)
{
	CursorQueryState *st = arg;

	if (st->offset >= 0)
		return;
	if (st->after_for)
		st->offset = location;
	else if (token == FOR)
		st->after_for = true;
}

int
pgsm_cursor_query_offset(const char *s, int len)
{
	CursorQueryState st = {-1, false};

	if (!scan_tokens(s, len, cursor_query_token, &st))
		return -1;
	return st.offset;
}
