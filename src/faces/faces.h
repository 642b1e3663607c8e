/*
 * Face detection (internal parts of the API in cored.h): SSD-MobileNetV1 trained on
 * WIDER FACE (face-api.js's weights, converted by tools/face_convert.py), run on cored's
 * own ops. docs/faces.md describes the network, the file and the measurements.
 *
 * The pipeline of cored_faces_detect, each step as face-api's JavaScript does it (the
 * reference of tests/parity_faces.py):
 *   1. the image is padded with black at the right or bottom to a square of side
 *      S = max(w, h) and resized to 512 x 512 with TensorFlow's legacy bilinear resize
 *      (tf.image.resizeBilinear, align_corners and half-pixel centres off), then scaled to
 *      x / 127.5 - 1;
 *   2. MobileNetV1 (13 depthwise-separable blocks, ReLU6) and the SSD's 8 extra layers; six
 *      box predictors read the 32x32, 16x16, 8x8, 4x4, 2x2 and 1x1 feature maps: 5118
 *      anchors, each with a box encoding and three class logits;
 *   3. score = sigmoid(logit of class 1), box = the encoding decoded against its anchor
 *      (scale factors 10, 10, 5, 5), normalised (ymin, xmin, ymax, xmax) of the square;
 *   4. greedy non-maximum suppression at IoU 0.5 over the boxes scoring above min_score;
 *   5. boxes scaled by S to pixels and clipped to the image.
 */
#ifndef CORED_FACES_H
#define CORED_FACES_H

#include <stddef.h>
#include <stdint.h>

#include "core/core.h"

#define CORED_FACE_ANCHORS 5118
#define CORED_FACE_CLASSES 3   /* background, face, (unused): score = sigmoid(logit 1) */
#define CORED_FACE_NMS_IOU 0.5f
#define CORED_FACE_BN_EPS 0.001f
#define CORED_FACE_MAX_SIDE 1024 /* largest `size` of cored_face_preprocess */

/* The SSD's prior boxes as the model was trained with (TF Object Detection API's
   ssd_anchor_generator: 6 layers, scales 0.2 .. 0.95, aspect ratios 1, 2, 1/2, 3, 1/3 plus
   one interpolated scale; the lowest layer reduced to (0.1, 1), (0.2, 2), (0.2, 1/2)), in
   the predictors' order (layer, row, column, anchor), as (ymin, xmin, ymax, xmax)
   normalised to the square input; computed in float32 as TensorFlow does. out holds
   CORED_FACE_ANCHORS * 4 floats; returns the number of anchors written. */
int cored_face_anchors(float *out);

/* Decodes one box encoding (ty, tx, th, tw) against an anchor (ymin, xmin, ymax, xmax):
   centre = anchor centre + t/10 * anchor size, size = exp(t/5) * anchor size. Each step
   rounded to float32 as face-api's tfjs graph does. box = (ymin, xmin, ymax, xmax). */
void cored_face_decode(float box[4], const float enc[4], const float anchor[4]);

/* Intersection over union of two (ymin, xmin, ymax, xmax) boxes as face-api computes it
   (corners sorted first; 0 when either box is empty). */
double cored_face_iou(const float *a, const float *b);

/* Greedy non-maximum suppression as face-api's nonMaxSuppression: the boxes with
   score > min_score in decreasing score order (ties: lower index first); a box is kept
   unless its IoU with a box kept before it exceeds `iou`; at most `max` are kept.
   keep receives the indices in order; order is scratch of n entries. Returns the count. */
int cored_face_nms(int *keep, int max, const float *boxes, const float *scores, int n,
                   float iou, float min_score, uint64_t *order);

/* The network's input: RGB8 (w x h, rows `stride` bytes apart) padded to a square of side
   max(w, h) with zeros at the right or bottom, resized to size x size with TF's legacy
   bilinear resize (source = destination * S / size, no half-pixel offset, in double) and
   scaled by x / 127.5 - 1, each step rounded to float32 as in tfjs. x: [size, size, 3],
   1 <= size <= CORED_FACE_MAX_SIDE. */
void cored_face_preprocess(float *x, int size, const uint8_t *rgb, int w, int h, size_t stride);

/* The raw outputs of the last cored_faces_detect on d, for tests and tools: the network's
   input [512, 512, 3] NHWC, every anchor's decoded box [5118][4] (ymin, xmin, ymax, xmax)
   normalised to the padded square, and its score [5118]. Valid until the next detect. */
const float *cored_face_detector_input(const cored_face_detector *d);
const float *cored_face_detector_boxes(const cored_face_detector *d);
const float *cored_face_detector_scores(const cored_face_detector *d);
/* Side of the padded square of the last detect (max(w, h)); 0 before any. */
int cored_face_detector_square(const cored_face_detector *d);

/* Multiply-adds of one forward pass (convolutions). */
double cored_face_detector_macs(const cored_face_detector *d);

#endif
