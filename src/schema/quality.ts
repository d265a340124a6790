import {
  BatchNeededReason as BatchNeededReasonValues,
  Quality as QualityValues,
} from '../state/model.js';
import { builder } from './builder.js';

export const Quality = builder.enumType(QualityValues, {
  name: 'Quality',
  description: 'The rendition a player is playing. Stored and shown as 1080p, 720p, 480p.',
});

export const BatchNeededReason = builder.enumType('BatchNeededReason', {
  description: [
    'Why a batch is needed. In v2 every client is served, not only the furthest.',
    '"Covered", for a rendition: segments made, being made, or in a need',
    'announced and not yet claimed. A client is served when its segment is',
    'covered in its rendition and the covered range it is in runs to the',
    "video's last segment, or has more than `threshold` segments ahead of the",
    'client, or ends with a batch still being made (the next batch waits for',
    'that one to complete, as in v1). An unserved client makes a need:',
    '- in a covered range, near its end: APPROACHING_END, right after the range;',
    '- not covered in its rendition but covered in another: QUALITY_CHANGE, at',
    '  its segment;',
    '- otherwise SEEK_AHEAD at its segment when no covered range of its',
    '  rendition lies after it, SEEK_BACK at its segment when one does.',
    'Clients made unserved by one change and needing the same start are one',
    'need, with their renditions. A need, once announced, does not change; a',
    'client needing another rendition there later makes its own need. A pending',
    'need is withdrawn when none of its clients needs it any more (moved, left,',
    'or served another way); FIRST_BATCH and STALLED are never withdrawn.',
  ].join('\n'),
  values: {
    [BatchNeededReasonValues.FIRST_BATCH]: {
      description:
        "The stream session has no batch yet: batch 0 starts at its startSegment, in the session's qualities.",
    },
    [BatchNeededReasonValues.APPROACHING_END]: {
      description:
        "A client is within `threshold` segments of the end of the covered range it is in, and that range's last batch is complete: the batch starts right after that range (v1: the furthest client and the current batch).",
    },
    [BatchNeededReasonValues.SEEK_AHEAD]: {
      description:
        'A client is at an uncovered segment with no covered range of its rendition after it: the batch starts where it is, not at the end of a range.',
    },
    [BatchNeededReasonValues.STALLED]: {
      description:
        'A batch was claimed but not completed within the batch timeout: generate it again (same number and range).',
    },
    [BatchNeededReasonValues.SEEK_BACK]: {
      description:
        'v2: a client is at an uncovered segment with a covered range of its rendition after it (it sought back into a gap, or those segments were released): the batch starts where it is.',
    },
    [BatchNeededReasonValues.QUALITY_CHANGE]: {
      description:
        "v2: a client's segment is not covered in its rendition but is in another (it switched rendition): the batch starts where it is, in the client's rendition.",
    },
  } as const,
});
