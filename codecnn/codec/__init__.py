"""Coding real video: FFmpeg, VVC and HEVC, what their bitstreams say, the manifest.

Modules, leaves first (each imports only modules above it in this list, and codecnn.io):

    manifest    the coded-sequence manifest (JSON) and PictureInfo
    ffmpeg      finding and checking FFmpeg; `run`, the one place a command runs
    commands    every coding command line as a pure function (VVenC and x265 fixed-QP
                options, encode/decode/trace_headers); imports no other codec module
    bitstream   what VVC and HEVC share: trace_headers sections, slice types, POC MSB,
                conformance window, Annex-B NAL units and access units, CodedPicture, Sps
    vvc, hevc   the same functions for each codec: parse_trace, access_unit_sizes,
                picture_infos, coded_size (only NAL types, element names and POC rules differ)
    libde265    the libde265 HEVC decoder through ctypes; CB grid ↔ depth, grey ↔ QP
    hevc_maps   HEVC CU depth and QP planes from libde265 (the `encode` side-info hook)
    codecs      the codec table CODECS (name → CodecSpec) and read_headers
    probe       what FFmpeg makes of an input file (size, rate, frames, pixel format)
    samples     the sample videos and images shipped inside installed wheels
    encode      `codecnn encode`: original, bitstreams, reconstructions, manifests
    vtm         VVC depth and QP from the VTM reference decoder
"""
