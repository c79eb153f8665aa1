/* SPDX-License-Identifier: MIT */
/*
 * Function identity (fnid.h): (build-id, offset) of a code address.
 *
 * dl_iterate_phdr lists every loaded object with its load base and program
 * headers.  The object that holds a function is the one with an executable
 * PT_LOAD segment covering it; its build-id is the NT_GNU_BUILD_ID note in
 * a PT_NOTE segment, which the loader maps with the rest.  Resolving walks
 * the same list for the object with the same build-id and checks that the
 * offset lands in its executable code, so a stale or forged name is an
 * error and never a jump to an arbitrary address.  Nothing is cached: the
 * walk is a few microseconds and stays right across dlopen and dlclose.
 */
#include <elf.h>
#include <errno.h>
#include <link.h>
#include <stdbool.h>
#include <string.h>

#include "fnid.h"

/* The build-id note of an object, or 0 bytes. */
size_t mp__fnid_build_id(const struct dl_phdr_info *info,
			 const uint8_t **out)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		size_t align = ph->p_align == 8 ? 8 : 4;
		const uint8_t *p = (const uint8_t *)(info->dlpi_addr + ph->p_vaddr);
		const uint8_t *end = p + ph->p_memsz;
		while ((size_t)(end - p) >= sizeof(ElfW(Nhdr))) {
			const ElfW(Nhdr) *n = (const ElfW(Nhdr) *)p;
			size_t name = (n->n_namesz + align - 1) & ~(align - 1);
			size_t desc = (n->n_descsz + align - 1) & ~(align - 1);
			const uint8_t *d = p + sizeof(*n) + name;
			if (name > (size_t)(end - p) || desc > (size_t)(end - d))
				break;
			if (n->n_type == NT_GNU_BUILD_ID && n->n_namesz == 4 &&
			    memcmp(p + sizeof(*n), "GNU", 4) == 0 &&
			    n->n_descsz > 0 && n->n_descsz <= MP__FNID_BUILD_ID_MAX) {
				*out = d;
				return n->n_descsz;
			}
			p = d + desc;
		}
	}
	return 0;
}

/* Does the object run code at offset off from its base? */
static bool in_code(const struct dl_phdr_info *info, uint64_t off)
{
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) &&
		    off >= ph->p_vaddr && off - ph->p_vaddr < ph->p_memsz)
			return true;
	}
	return false;
}

struct walk {
	uintptr_t addr;
	struct mp__fnid *id;
	const struct mp__fnid *want;
	int rc;
};

static int find_address(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct walk *w = arg;
	(void)size;
	uint64_t off = (uint64_t)(w->addr - info->dlpi_addr);
	if (w->addr < info->dlpi_addr || !in_code(info, off))
		return 0;
	const uint8_t *bid;
	size_t n = mp__fnid_build_id(info, &bid);
	if (n == 0) {
		w->rc = -ENOTSUP;
		return 1;
	}
	memset(w->id, 0, sizeof(*w->id));
	w->id->offset = off;
	w->id->id_len = (uint8_t)n;
	memcpy(w->id->build_id, bid, n);
	w->rc = 0;
	return 1;
}

int mp__fnid_of(mp__fn fn, struct mp__fnid *id)
{
	if (!fn || !id)
		return -EINVAL;
	struct walk w = {.addr = (uintptr_t)fn, .id = id, .rc = -ENOENT};
	dl_iterate_phdr(find_address, &w);
	return w.rc;
}

static int find_build_id(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct walk *w = arg;
	(void)size;
	const uint8_t *bid;
	size_t n = mp__fnid_build_id(info, &bid);
	if (n != w->want->id_len || memcmp(bid, w->want->build_id, n) != 0)
		return 0;
	if (!in_code(info, w->want->offset)) {
		w->rc = -EFAULT;
		return 1;
	}
	w->addr = info->dlpi_addr + (uintptr_t)w->want->offset;
	w->rc = 0;
	return 1;
}

int mp__fnid_resolve(const struct mp__fnid *id, mp__fn *fn)
{
	if (!id || !fn || id->id_len == 0 || id->id_len > MP__FNID_BUILD_ID_MAX)
		return -EINVAL;
	struct walk w = {.want = id, .rc = -ENOENT};
	dl_iterate_phdr(find_build_id, &w);
	if (w.rc == 0)
		*fn = (mp__fn)w.addr;
	return w.rc;
}
