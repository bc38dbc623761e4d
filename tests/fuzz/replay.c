/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The main() of every fuzz target when it is not a libFuzzer binary (gcc has
 * no libFuzzer): replay the corpus files and directories named on the command
 * line through LLVMFuzzerTestOneInput, so CTest runs the committed corpus.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vfsd/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	_cleanup_free_ uint8_t *buf = NULL;
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "%s: %m\n", path);
		return -1;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf)
		return -1;
	n = read_full(fd, buf, (size_t)st.st_size);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror((int)-n));
		return -1;
	}
	LLVMFuzzerTestOneInput(buf, (size_t)n);
	return 0;
}

int main(int argc, char **argv)
{
	const char *prog = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
	unsigned int files = 0, failed = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		DIR *d;
		struct dirent *de;

		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "%s: %m\n", argv[i]);
			failed++;
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			failed += replay_file(argv[i]) < 0;
			files++;
			continue;
		}
		d = opendir(argv[i]);
		if (!d) {
			fprintf(stderr, "%s: %m\n", argv[i]);
			failed++;
			continue;
		}
		while ((de = readdir(d))) {
			char path[4096];

			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			failed += replay_file(path) < 0;
			files++;
		}
		closedir(d);
	}
	printf("%s: replayed %u inputs, %u unreadable\n", prog, files, failed);
	if (files == 0)
		fprintf(stderr, "%s: no inputs (usage: %s DIR|FILE...)\n", prog, prog);
	return failed || files == 0 ? 1 : 0;
}
