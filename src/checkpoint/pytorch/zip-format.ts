/** The parts of the zip format (APPNOTE 6.3) that torch.save archives use, named once for the reader and the writer. */

export const LOCAL_SIGNATURE = 0x04034b50;
export const CENTRAL_SIGNATURE = 0x02014b50;
export const EOCD_SIGNATURE = 0x06054b50;
export const ZIP64_EOCD_SIGNATURE = 0x06064b50;
export const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;

/** Fixed sizes of the local header, the central directory header and the end record, before their variable parts. */
export const LOCAL_HEADER_BYTES = 30;
export const CENTRAL_HEADER_BYTES = 46;
export const EOCD_BYTES = 22;

/** A 32-bit size or offset field holding this means the ZIP64 extra field carries the value. */
export const ZIP32_LIMIT = 0xffffffff;
/** Likewise for the 16-bit entry counts. */
export const ENTRY_LIMIT = 0xffff;
/** The extra field id of ZIP64 sizes and offsets. */
export const ZIP64_EXTRA_ID = 0x0001;
