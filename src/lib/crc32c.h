/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum that tells a record that
 * was written whole from one torn by a crash (the same polynomial as
 * iSCSI, ext4 and btrfs metadata).
 */
#ifndef SMTPGATE_LIB_CRC32C_H
#define SMTPGATE_LIB_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* CRC-32C of len bytes, continuing from crc (0 to start). */
uint32_t	crc32c(uint32_t crc, const void *data, size_t len);

#endif
