/* SPDX-License-Identifier: MIT */
/* 6. Download images, one process per URL (the tutorial's naive way). */
/*
 * The tutorial's practical example, 多进程下载图片:
 *
 *     def download_image(url, filename):
 *         response = requests.get(url)
 *         with open(filename, 'wb') as file:
 *             file.write(response.content)
 *         print(f'{filename} 下载完成')
 *
 *     for i, url in enumerate(image_urls):
 *         process = multiprocessing.Process(target=download_image,
 *                                           args=(url, f'image_{i}.jpg'))
 *         processes.append(process)
 *         process.start()
 *     for process in processes:
 *         process.join()
 *     print('所有图片下载完成!')
 *
 * The same in C: one mp_process per URL, each with its own libcurl handle,
 * made in the child after the fork.  Fine for three images; for three
 * thousand, starting a process and a connection per file costs far more
 * than the download itself: tools/mpget does it with a few worker
 * processes that each keep many connections busy.
 *
 * Usage: 06-download-images URL...   (the demo passes local URLs)
 */
#include <stdio.h>

#include <curl/curl.h>
#include <multiproc.h>

struct download {
	const char *url;
	char filename[32];
};

static int download_image(void *arg)
{
	struct download *d = arg;
	FILE *file = fopen(d->filename, "wb");
	CURL *curl = curl_easy_init();
	CURLcode rc = CURLE_FAILED_INIT;

	if (file && curl) {
		curl_easy_setopt(curl, CURLOPT_URL, d->url);
		curl_easy_setopt(curl, CURLOPT_WRITEDATA, file);
		curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
		rc = curl_easy_perform(curl);
	}
	if (curl)
		curl_easy_cleanup(curl);
	if (file)
		fclose(file);
	if (rc != CURLE_OK) {
		fprintf(stderr, "%s: %s\n", d->url, curl_easy_strerror(rc));
		remove(d->filename);
		return 1;
	}
	printf("%s 下载完成 (downloaded)\n", d->filename);
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc - 1;
	int failed = 0;

	if (n == 0) {
		printf("usage: %s URL...  (downloads each URL to "
		       "image_{i}.jpg, one process per URL)\n", argv[0]);
		return 0;
	}
	if (n > 64) {
		fprintf(stderr, "one process per URL: at most 64 here\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);

	struct download downloads[64];
	mp_process *processes[64];

	for (int i = 0; i < n; i++) {
		downloads[i].url = argv[i + 1];
		snprintf(downloads[i].filename, sizeof(downloads[i].filename),
			 "image_%d.jpg", i);
		processes[i] = mp_process_new(download_image, &downloads[i]);
		if (!processes[i] || mp_process_start(processes[i]) != 0) {
			perror("start");
			return 1;
		}
	}
	for (int i = 0; i < n; i++) {
		mp_process_join(processes[i], MP_FOREVER);
		failed += mp_process_exitcode(processes[i]) != 0;
		mp_process_free(processes[i]);
	}
	curl_global_cleanup();
	if (failed) {
		printf("%d 张图片下载失败 (%d failed)\n", failed, failed);
		return 1;
	}
	printf("所有图片下载完成! (all images downloaded)\n");
	return 0;
}
