/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The integration-test harness: which back-end to run, with which share.
 */
#include <ftw.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "vfe.h"
#include "vfsd/util.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	remove(path);
	return 0;
}

int vfe_harness_start(const char *default_binary, struct vfe_harness **ret)
{
	const char *cmd = getenv("VFSD_TEST_BACKEND");
	const char *root = getenv("VFSD_TEST_ROOT");
	_cleanup_free_ char *copy = NULL;
	const char *argv[64];
	const char *extra[2] = { NULL, NULL };
	char shareopt[300];
	struct vfe_harness *h;
	size_t n = 0, rootlen = 0;
	int r;

	if (root && !*root)
		root = NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	if (cmd && *cmd) {
		h->external = true;
		copy = strdup(cmd);
		if (!copy) {
			free(h);
			return -ENOMEM;
		}
		for (char *save = NULL, *t = strtok_r(copy, " \t", &save); t && n < 62;
		     t = strtok_r(NULL, " \t", &save))
			argv[n++] = t;
	} else {
		argv[n++] = default_binary;
	}
	argv[n] = NULL;
	if (n == 0) {
		free(h);
		return -EINVAL;
	}

	snprintf(h->share, sizeof(h->share), "%s/tmp/vfe-share-XXXXXX", root ? root : "");
	if (!mkdtemp(h->share)) {
		r = -errno;
		free(h);
		return r;
	}
	if (root) {
		rootlen = strlen(root);
		while (rootlen > 0 && root[rootlen - 1] == '/')
			rootlen--;
	}
	snprintf(shareopt, sizeof(shareopt), "--shared-dir=%s", h->share + rootlen);
	extra[0] = shareopt;

	r = vfe_backend_spawn(
	    &(struct vfe_spawn_opts){ .argv = argv, .path_root = root, .extra = extra }, &h->be);
	if (r >= 0)
		r = vfe_connect(h->be->socket_path, 0, &h->fe);
	if (r < 0) {
		vfe_harness_free(h);
		return r;
	}
	*ret = h;
	return 0;
}

void vfe_harness_free(struct vfe_harness *h)
{
	if (!h)
		return;
	vfe_free(h->fe);
	vfe_backend_free(h->be);
	if (h->share[0])
		nftw(h->share, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(h);
}
