// userfaultfd (linux/userfaultfd.h). The ioctl numbers are _IOWR(0xAA, nr, struct): direction
// bits 3 at bit 30 on x86_64 and (READ 2 | WRITE 4) at bit 29 on ppc64 give the same 0xC0000000.
export const UFFD = Object.freeze({
  API: 0xaa,
  /** ioctls */
  UFFDIO_API: 0xc018aa3f, // struct uffdio_api { u64 api, features, ioctls } (24 bytes)
  UFFDIO_REGISTER: 0xc020aa00, // struct uffdio_register { range { u64 start, len }, u64 mode, ioctls } (32)
  UFFDIO_COPY: 0xc028aa03, // struct uffdio_copy { u64 dst, src, len, mode; s64 copy } (40)
  UFFDIO_ZEROPAGE: 0xc020aa04, // struct uffdio_zeropage { range, u64 mode; s64 zeropage } (32)
  REGISTER_MODE_MISSING: 1,
  /** uffd_msg.event */
  EVENT_PAGEFAULT: 0x12,
  EVENT_FORK: 0x13,
  EVENT_REMAP: 0x14,
  EVENT_REMOVE: 0x15,
  EVENT_UNMAP: 0x16,
  /** uffdio_api.features */
  FEATURE_EVENT_REMAP: 1 << 2,
  FEATURE_EVENT_REMOVE: 1 << 3,
  FEATURE_EVENT_UNMAP: 1 << 6,
  /** struct uffd_msg is 32 bytes: u8 event, 7 reserved, then the union at offset 8. */
  MSG_SIZE: 32,
  /** userfaultfd(2) flag: faults from user mode only (no privilege needed). */
  USER_MODE_ONLY: 1,
});
