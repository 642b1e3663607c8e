#!/usr/bin/env bash
# Fetches the real photographs of cored's bundled benchmark from pinned Debian 12 (bookworm)
# packages into a cache folder, without installing anything:
#
#   tools/fetch_real.sh CACHE_DIR        ->  CACHE_DIR/real/faces/...  CACHE_DIR/real/photos/...
#
# Each package is fetched with `apt-get download PKG=VERSION` into a temporary folder and
# unpacked with `dpkg -x` there; the .deb's SHA-256 is checked against the pin below (on
# amd64; for the two architecture-specific packages other architectures get another .deb,
# whose files are still checked), then the SHA-256 of every file used, which is copied into
# the cache. A complete cache is detected (every file present with its hash) and nothing is
# downloaded. When a download fails and this runs as root, `apt-get update` is run once and
# the download retried (fresh Debian images ship without package lists).
#
# What it holds (103 photographs, 25 MB of .debs; docs/synth.md):
#   faces/johns/<Name>/*.jpg   54 aligned 150x150 face chips, 5 people (libdlib19.1 examples;
#                              one byte-identical duplicate of the 55 is left out)
#   faces/dlib/*.jpg, *.xml    12 photos with faces (PASCAL VOC and others) and dlib's face
#                              boxes and 68-point landmarks for 9 of them (libdlib19.1)
#   faces/portraits/*          12 historic portraits and group photos (gramps example data)
#                              and Grace Hopper's portrait (python-matplotlib-data)
#   photos/kphotoalbum/*.jpg   24 holiday, party and pet photos (kphotoalbum demo)
# Licences: dlib examples public domain (CC dedication), gramps and kphotoalbum GPL-2+,
# matplotlib sample data under the matplotlib licence; the photos are third-party, which is
# why they are fetched rather than committed.
set -euo pipefail

usage() {
    cat <<'USAGE'
usage: tools/fetch_real.sh CACHE_DIR

Fetches 103 real photographs from pinned Debian 12 packages (libdlib19.1, gramps,
python-matplotlib-data, kphotoalbum; 25 MB download) into CACHE_DIR/real, checking the
SHA-256 of every package and file. Nothing is installed. Run again: nothing is downloaded
when CACHE_DIR/real is complete. Then: cored synth --real CACHE_DIR/real --out DATA
USAGE
}

# package version arch sha256-of-.deb size
PACKAGES="
libdlib19.1 19.24+dfsg-1 amd64 f03f46681d43701914ddd38eee42f1d34dc1d12e2f125bd1e3b562f23572b4da 3732524
gramps 5.1.5-1 all 77875e0983e97498e91a14b4fd4033998146a582c7932a993cf268929a9fda6b 6748788
python-matplotlib-data 3.6.3-1 all e4150fcebd35ea11e0f66268da97ce62f98a4cf530c944f755f241da1a9158f9 2743688
kphotoalbum 5.9.1-1 amd64 00f8b26b5db1beb30a822d15f464b3c68ffa556d267870aa98a59aaaaf81ec43 12186928
"

# package sha256 path-in-package path-in-cache (relative to CACHE_DIR/real)
FILES="
libdlib19.1 0746dd3800035ee47842520e89da30d6890a89bcc737b510de42d307ce324f92 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000179_02159509.jpg faces/johns/John_Salley/000179_02159509.jpg
libdlib19.1 34ad490007419a2ffa8c59dbbb7b5d7fb7f6b8592ee61c4935b95502ecee5a83 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000183_02159543.jpg faces/johns/John_Salley/000183_02159543.jpg
libdlib19.1 feae177e82c18f30d4185fbb74a0b86cce81533e3fd0ad41a6d47348e6b1690a usr/share/doc/libdlib19.1/examples/johns/John_Salley/000186_02159346.jpg faces/johns/John_Salley/000186_02159346.jpg
libdlib19.1 5c676851430fd37324186db62180375dbe43cc651a11baf884b41c7355b7adcb usr/share/doc/libdlib19.1/examples/johns/John_Salley/000189_02159361.jpg faces/johns/John_Salley/000189_02159361.jpg
libdlib19.1 46061ccf5f1182c2ddf38e15b97eaaa1e1b680bd8b77167e81c23222385ab1c9 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000190_02159501.jpg faces/johns/John_Salley/000190_02159501.jpg
libdlib19.1 1195de34b90494a85b2d9acc6fcfc63e420e50f0643d0cb941e164564a93a462 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000192_02159531.jpg faces/johns/John_Salley/000192_02159531.jpg
libdlib19.1 f31c9b54e688dd40b93dbd03143dced5ef9b910f7bc31480a57df92bc43b5826 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000194_02159572.jpg faces/johns/John_Salley/000194_02159572.jpg
libdlib19.1 74b907a60a4e6ccaf0579556611ac1da44b0ef9952de69d0f2a1975ac5805d77 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000197_02159322.jpg faces/johns/John_Salley/000197_02159322.jpg
libdlib19.1 0c8063fcb3f8380096b1bea6fa45d51dc035b4440871b1afb0faf2941336bc78 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000197_02159525.jpg faces/johns/John_Salley/000197_02159525.jpg
libdlib19.1 3997d74f00079292a20985ee10836d7339722aa4bb338bf500415aac746504e6 usr/share/doc/libdlib19.1/examples/johns/John_Salley/000198_02159470.jpg faces/johns/John_Salley/000198_02159470.jpg
libdlib19.1 6fb36f5546247c2a6a3a8e2444ee64cd67c635038202156b3c2cf4189b58b2ca usr/share/doc/libdlib19.1/examples/johns/John_Salley/000200_02159354.jpg faces/johns/John_Salley/000200_02159354.jpg
libdlib19.1 14eed136cdd4080c5b5cbd8ddc6928e979de2f75cc36b8ccc25f7f3d2f953472 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000264_01099001.jpg faces/johns/John_Savage/000264_01099001.jpg
libdlib19.1 963beefe814c9e5e7ee85771de931d8d1fbad881181caaa25f08fb916b9070f8 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000274_01099061.jpg faces/johns/John_Savage/000274_01099061.jpg
libdlib19.1 d13c13fbeab0e4e537c472c31ebe901e67edeab7a6d5cb9f712dcbbf006c7ef3 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000277_01099000.jpg faces/johns/John_Savage/000277_01099000.jpg
libdlib19.1 7c51344a8f6186e50a6576c7150e25d4f0886cd6b77145a44b974da8ebd4f656 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000289_01099139.jpg faces/johns/John_Savage/000289_01099139.jpg
libdlib19.1 a739afbc670df1f9a0e1db3e377625433f826a0cd19b59e87bd2962ac5592921 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000290_01099067.jpg faces/johns/John_Savage/000290_01099067.jpg
libdlib19.1 df0920ea9aee4af6e024ad7f13d1ec123afb9b2dca50092e2da031b752f90486 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000290_01099090.jpg faces/johns/John_Savage/000290_01099090.jpg
libdlib19.1 1a87cfe7494cebaca178577362d9df7ed070d229e893d69668279fd509faf726 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000291_01099023.jpg faces/johns/John_Savage/000291_01099023.jpg
libdlib19.1 3c012fdceadaf4093fb8b60ebeb9dfd04f9895b3042817bcd8ad56a1a7979b4b usr/share/doc/libdlib19.1/examples/johns/John_Savage/000291_01099214.jpg faces/johns/John_Savage/000291_01099214.jpg
libdlib19.1 a915ea14f07eb602a38cea48dbe0af25e61458b374cca6b5ded133970fbf6738 usr/share/doc/libdlib19.1/examples/johns/John_Savage/000293_01099081.jpg faces/johns/John_Savage/000293_01099081.jpg
libdlib19.1 b2a5982b79fc05464f3dbf9683109fb2186c6fd6a630e67c172b421d57d0f6cd usr/share/doc/libdlib19.1/examples/johns/John_Savage/000296_01099007.jpg faces/johns/John_Savage/000296_01099007.jpg
libdlib19.1 48135745f2de730862e2ba2647d6a329b58c9cc2ca96112ca8170d926216356a usr/share/doc/libdlib19.1/examples/johns/John_Savage/000299_01099008.jpg faces/johns/John_Savage/000299_01099008.jpg
libdlib19.1 8900ddf30b907b45d58d78fbe85dc52daa126a20edccd0af20a501c2192eb8d9 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000288_00925786.jpg faces/johns/John_Schneider/000288_00925786.jpg
libdlib19.1 c1fff8cadef7ac405c12fcaea3f2ce005b4bea682f9b0ff850aeb297477183b1 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000302_00925785.jpg faces/johns/John_Schneider/000302_00925785.jpg
libdlib19.1 7460dad4bd21e077896cfa5e45bf44fde4c66d23a6147d785ad7100fb389c9af usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000307_00925823.jpg faces/johns/John_Schneider/000307_00925823.jpg
libdlib19.1 59387450152a14bdc667755db88125f962555140b00488b29a02eb21721f75ca usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000325_00925954.jpg faces/johns/John_Schneider/000325_00925954.jpg
libdlib19.1 d215376c3e7f89f85fa0f667141600733e653a843224036cf377a6842f22508e usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000326_00925765.jpg faces/johns/John_Schneider/000326_00925765.jpg
libdlib19.1 f79a401ef35ec02bd12ca98cfe1d29025bafe3ce87e23eef1eb47deaaf4e2ac4 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000326_00926089.jpg faces/johns/John_Schneider/000326_00926089.jpg
libdlib19.1 f5731324fc2d5e2173cb627e0d28898b3220a4298bcd78c49e6b97dce05ee7b9 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000326_00926128.jpg faces/johns/John_Schneider/000326_00926128.jpg
libdlib19.1 963bd64806fb22d27a4d8b903b9b2a20304d0bbd064149c8c29192ea9a72f690 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000326_00926139.jpg faces/johns/John_Schneider/000326_00926139.jpg
libdlib19.1 58e0a4141ecb966ac83aba88562719accdcdc12376a5a8c10c1475d65e741b1c usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000329_00925859.jpg faces/johns/John_Schneider/000329_00925859.jpg
libdlib19.1 580330c8fa271cc509620d8d380937f45ee49b4f7f2a09126921dad918055a1b usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000329_00925963.jpg faces/johns/John_Schneider/000329_00925963.jpg
libdlib19.1 3d1fcdcfd4205e2c92eff4db8b4c6cd22a1d57f03df1dce9cf0bcb4952f0e067 usr/share/doc/libdlib19.1/examples/johns/John_Schneider/000331_00926012.jpg faces/johns/John_Schneider/000331_00926012.jpg
libdlib19.1 457a4a7a038291f40274ecf11e869c3f119e6bf4d0ff84971424a3054484a45a usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000373_03228153.jpg faces/johns/John_Shimkus/000373_03228153.jpg
libdlib19.1 e01aaf38b541e806e1469839db5caccb523591c1cc9b4f3429469a65439d236a usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000375_03227651.jpg faces/johns/John_Shimkus/000375_03227651.jpg
libdlib19.1 4b19df0572048b3ebcf5d4a44b3d03844f024ba90b7a235430900e54816eb322 usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000376_02340068.jpg faces/johns/John_Shimkus/000376_02340068.jpg
libdlib19.1 0c309a24a6611ebc5a0a30a476819d551409c4d636cc8fe813c015412c26038f usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000378_02340151.jpg faces/johns/John_Shimkus/000378_02340151.jpg
libdlib19.1 2687d6271246ecf599e07294d1abe84e2ee67430626643182daa74040d52070c usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000383_03227939.jpg faces/johns/John_Shimkus/000383_03227939.jpg
libdlib19.1 e183fc03869b13cfa7372d7ff7495c7966aa1f87f0fd3fbf0334bc7718b315d8 usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000385_03227766.jpg faces/johns/John_Shimkus/000385_03227766.jpg
libdlib19.1 285507f70f60eebe3dfdb985645f6ce4a124e31484635093ac9921840aed889c usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000388_03227773.jpg faces/johns/John_Shimkus/000388_03227773.jpg
libdlib19.1 642de9776b341c01575ac681bee0b879097d03cb9875c773b5b1efc332d3ffaf usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000390_03227666.jpg faces/johns/John_Shimkus/000390_03227666.jpg
libdlib19.1 f982b0ed19b17fbffa733ea4021d64f7530ed56b8b49b6ba4110706f28bbc382 usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000394_02340150.jpg faces/johns/John_Shimkus/000394_02340150.jpg
libdlib19.1 290ac1aea49ea5586c8b02fe16e8c6026b4fe65cbe13c71114b3530a3254a8a8 usr/share/doc/libdlib19.1/examples/johns/John_Shimkus/000396_03227722.jpg faces/johns/John_Shimkus/000396_03227722.jpg
libdlib19.1 0283a79b2b661b3452796c5cf197eb7abba03974eeb8f4a4eae2d60f85f4a5c0 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000288_00470387.jpg faces/johns/John_Simm/000288_00470387.jpg
libdlib19.1 da2bd90ee746468220a217535130dadffa5ebaa2db3f8293e2d319d4a7247efd usr/share/doc/libdlib19.1/examples/johns/John_Simm/000297_00470170.jpg faces/johns/John_Simm/000297_00470170.jpg
libdlib19.1 21e8a27203f7ab27f58f62f81cb61beb4269ba797c03bbd8d7949aab3c5f8f34 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000300_00470148.jpg faces/johns/John_Simm/000300_00470148.jpg
libdlib19.1 e5de14637ad7702f1dc0b2991c1eb6e4a4a5d8ca6553b35edab25db1457c7747 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000304_00470122.jpg faces/johns/John_Simm/000304_00470122.jpg
libdlib19.1 1d35bc715aff1d1e2507e1f2daf10b9fe630f48b5f7f48ab6c062adc8b2e53cc usr/share/doc/libdlib19.1/examples/johns/John_Simm/000305_00470162.jpg faces/johns/John_Simm/000305_00470162.jpg
libdlib19.1 dac8ddb986fd4982165a9ed6ad3de5c9d7ab16f477c8c9aee6bf827b70ad0b06 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000305_00470717.jpg faces/johns/John_Simm/000305_00470717.jpg
libdlib19.1 ee3b7d8c944ce27289d42d716d692bee6a91b82f23db1dc3b219b276472dca5f usr/share/doc/libdlib19.1/examples/johns/John_Simm/000306_00470222.jpg faces/johns/John_Simm/000306_00470222.jpg
libdlib19.1 9a42baf63e6b0703f5315cf514eb586508000c00e287f4f8ea066bdc9f74e865 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000306_00470223.jpg faces/johns/John_Simm/000306_00470223.jpg
libdlib19.1 a940745579f147de6c3411dcaac92c39dbb37bcd2f094d2859951d945976b7d9 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000309_00470287.jpg faces/johns/John_Simm/000309_00470287.jpg
libdlib19.1 b9a98269a8deb8f66c88d2dd1a067d869d3e6fe1a7c12eb0863af8edd07a0b89 usr/share/doc/libdlib19.1/examples/johns/John_Simm/000310_00470421.jpg faces/johns/John_Simm/000310_00470421.jpg
libdlib19.1 f77c91f446f2411f4fc7f0405471dd06fd74eb7626c6e3059f458eadc893f26d usr/share/doc/libdlib19.1/examples/johns/John_Simm/000310_00470511.jpg faces/johns/John_Simm/000310_00470511.jpg
libdlib19.1 17d9897dd55d38179f51dc18371b3f4495a606aaa2846e25a3cb6a58b3a97c89 usr/share/doc/libdlib19.1/examples/faces/2007_007763.jpg faces/dlib/2007_007763.jpg
libdlib19.1 2509864113a286bf245161d0317a18c38b6a6641135969847a7e59dff359c52c usr/share/doc/libdlib19.1/examples/faces/2008_001009.jpg faces/dlib/2008_001009.jpg
libdlib19.1 2ea5a60f5347baab8da6eccce43b0320d63da1368d7710fb15cbff8a790bc626 usr/share/doc/libdlib19.1/examples/faces/2008_001322.jpg faces/dlib/2008_001322.jpg
libdlib19.1 f929bdf416d756b37eb90c119b892eba5d21041b134883e18d827bce641fb48f usr/share/doc/libdlib19.1/examples/faces/2008_002079.jpg faces/dlib/2008_002079.jpg
libdlib19.1 14b543e3ac55b497aaaba9dc03a39be04c8ae670851b3f78f9f5adb08295d780 usr/share/doc/libdlib19.1/examples/faces/2008_002470.jpg faces/dlib/2008_002470.jpg
libdlib19.1 ede6804edf0ec005144ffe7f0f2b56bd2aa1d21beee79d29f72cb16ead19a447 usr/share/doc/libdlib19.1/examples/faces/2008_002506.jpg faces/dlib/2008_002506.jpg
libdlib19.1 92a075f5e1d279f009ab4809592aaf0109e429adf3266e5aa8ce2755730b41c2 usr/share/doc/libdlib19.1/examples/faces/2008_004176.jpg faces/dlib/2008_004176.jpg
libdlib19.1 09a0e07d6fb3b4276e73b9f6450b5c69d97d3e3b75807948caf6defd40260e6f usr/share/doc/libdlib19.1/examples/faces/2008_007676.jpg faces/dlib/2008_007676.jpg
libdlib19.1 2dc5d52a5388499cf912d7d99dc9d05e4bec7651153331f40e81ae4813bb317c usr/share/doc/libdlib19.1/examples/faces/2009_004587.jpg faces/dlib/2009_004587.jpg
libdlib19.1 d9bea1c716b461c15ac3bc7e256bb5efa3e04379d7131f9347e96e4baa6a37c6 usr/share/doc/libdlib19.1/examples/faces/Tom_Cruise_avp_2014_4.jpg faces/dlib/Tom_Cruise_avp_2014_4.jpg
libdlib19.1 e0c40697dbd9a07684274f71760bc5161468e926ba75ff90d48b168019402e8b usr/share/doc/libdlib19.1/examples/faces/bald_guys.jpg faces/dlib/bald_guys.jpg
libdlib19.1 66e22f8c3bd3b8f876ad9158caaa064992d2b56a5681d9c6efa163a59db7ed03 usr/share/doc/libdlib19.1/examples/faces/dogs.jpg faces/dlib/dogs.jpg
libdlib19.1 25abc4cb274b5e8c15266d1450509fb834042dcfd5f92ae52853268129ac734f usr/share/doc/libdlib19.1/examples/faces/testing.xml faces/dlib/testing.xml
libdlib19.1 b45d736ab07016dd552a95cedb569a5e1f0c4dacf9ba6db60861fec55c05c57e usr/share/doc/libdlib19.1/examples/faces/testing_with_face_landmarks.xml faces/dlib/testing_with_face_landmarks.xml
libdlib19.1 7bcac38904f4b7f5086ff0eda080ac32c0043f8c62c9c72da5a09c4d81254423 usr/share/doc/libdlib19.1/examples/faces/training.xml faces/dlib/training.xml
libdlib19.1 d7895a98681f5e3818fb5d95cd75fdeba7c0e0c74cc9b22193df2909eb8f6ce5 usr/share/doc/libdlib19.1/examples/faces/training_with_face_landmarks.xml faces/dlib/training_with_face_landmarks.xml
python-matplotlib-data a8ca6d734765703b09728ab47fe59f473d93ae3967fc24c7c0288c3c7adb7130 usr/share/matplotlib/mpl-data/sample_data/grace_hopper.jpg faces/portraits/grace_hopper.jpg
gramps adaaef7d62c63e355e39441f09ac48b54cba07624ea989685197361c1d310e19 usr/share/doc/gramps/example/gramps/1897_expeditionsmannschaft_rio_a.jpg faces/portraits/gramps-1897_expeditionsmannschaft_rio_a.jpg
gramps 008db50ce49674f9ecf70d45202010d3c291b1f8f50a171370f486dbe770a4c1 usr/share/doc/gramps/example/gramps/654px-Aksel_Andersson.jpg faces/portraits/gramps-654px-Aksel_Andersson.jpg
gramps c1bddae8f3d086cfde5dfec2b145bfa91846666b307b0b73b2ee84ae111a90ab usr/share/doc/gramps/example/gramps/AntoineClaudet.png faces/portraits/gramps-AntoineClaudet.png
gramps c88a839c7619af83a81e0fbb9a45bb425afcef505b813d970467dc7cabf91deb usr/share/doc/gramps/example/gramps/E_W_Dahlgren.jpg faces/portraits/gramps-E_W_Dahlgren.jpg
gramps 7f9731f2647635ab60f75da3476c63a3b553ed176137c006d058ce0f7b745df2 usr/share/doc/gramps/example/gramps/Gunnlaugur_Larusson_-_Yawn.jpg faces/portraits/gramps-Gunnlaugur_Larusson_-_Yawn.jpg
gramps ee8917b4c8b72638a15ebe6ea4534fcaca9aede507d2062415c90c49dbef41ec usr/share/doc/gramps/example/gramps/O0.jpg faces/portraits/gramps-O0.jpg
gramps 7bca3649fcf91aa422601d4e2c2e557bcb97319d84ea3e7a49b2d25f662bbe90 usr/share/doc/gramps/example/gramps/O1.jpg faces/portraits/gramps-O1.jpg
gramps 777d7ca21ab630721d4160d89cb8ff28d5895e5bca96912d4f79b2c9b1885b56 usr/share/doc/gramps/example/gramps/O2.jpg faces/portraits/gramps-O2.jpg
gramps f068790efd8e122fb3b74d4a08566a96519741f634d763539e1acf4ec99b924a usr/share/doc/gramps/example/gramps/O3.jpg faces/portraits/gramps-O3.jpg
gramps cf646d89982c39aa6894176253936497e80e98364bd40e99039e10d63419e576 usr/share/doc/gramps/example/gramps/O4.jpg faces/portraits/gramps-O4.jpg
gramps a3b5481491e77d8cbcd7df184c27de602721064898ed2dcfa379b3b936931986 usr/share/doc/gramps/example/gramps/O5.jpg faces/portraits/gramps-O5.jpg
gramps e786b16960b2554d3efe7722fb28765f22ff636f53dd4638945b93a8963f8705 usr/share/gramps/images/splash.jpg faces/portraits/gramps-splash.jpg
kphotoalbum 75dea938bf86530e95c6b74dbcc7fb447947fd17d523121634e08f03e0e7304f usr/share/kphotoalbum/demo/anne_helene.jpg photos/kphotoalbum/anne_helene.jpg
kphotoalbum dd57f8a93ea84b46d817d3b10d496360b81588da9ea887887d057803cc39c52d usr/share/kphotoalbum/demo/bar55.jpg photos/kphotoalbum/bar55.jpg
kphotoalbum e2a3ebc63306abf0a3ae898edd69fbc0a5cef16f28450ceb1d32c67c6f7b662a usr/share/kphotoalbum/demo/bar55_2.jpg photos/kphotoalbum/bar55_2.jpg
kphotoalbum 5a72fc60a65448e02e8022820ed5bc15d3e9ce4c92d55d51a7d760357cf704e7 usr/share/kphotoalbum/demo/blackie.jpg photos/kphotoalbum/blackie.jpg
kphotoalbum 1c92d774263012891803360080a03999ffdb4fb643f320d9c106b5a3cbb21306 usr/share/kphotoalbum/demo/cold_water.jpg photos/kphotoalbum/cold_water.jpg
kphotoalbum c98f91990752bb6dff72bd8bb2820dc28317051c0e60ddf11822a39f076c31da usr/share/kphotoalbum/demo/donna.jpg photos/kphotoalbum/donna.jpg
kphotoalbum b476b81f11db406767598266f81cb8623204c8207f297e4abcf2055366794b5f usr/share/kphotoalbum/demo/donna_2.jpg photos/kphotoalbum/donna_2.jpg
kphotoalbum 5d60136f1143918c30d5ddf8892216fc401ea126ed01afe1d8b9374cfae43669 usr/share/kphotoalbum/demo/grand_canyon_1.jpg photos/kphotoalbum/grand_canyon_1.jpg
kphotoalbum 7814adbefb9665f506acf5123981c83bb5b22dde12b10ef57083d328a86cbdb6 usr/share/kphotoalbum/demo/grand_canyon_2.jpg photos/kphotoalbum/grand_canyon_2.jpg
kphotoalbum 923ba3a8d16993388f19686d333d70988f7baf4885865af1729f80bbbd02ffe7 usr/share/kphotoalbum/demo/grand_canyon_3.jpg photos/kphotoalbum/grand_canyon_3.jpg
kphotoalbum 5b3b5a6cdf040c238c137fd50d3f4e3aa3f6877b6f031c93ad9b06c45225b7e6 usr/share/kphotoalbum/demo/jesper.jpg photos/kphotoalbum/jesper.jpg
kphotoalbum e7c5112cad4076c0b16f7a822b0bf559859ad84077705442769afb91c81bcb1b usr/share/kphotoalbum/demo/jesper_2.jpg photos/kphotoalbum/jesper_2.jpg
kphotoalbum dd422c963594e0441ab66c600a322a0b7259dc4b9db535c9a30010b66ce14200 usr/share/kphotoalbum/demo/new_wave_1.jpg photos/kphotoalbum/new_wave_1.jpg
kphotoalbum a262d1ec436c0f41495963cbaaf69cb618da0b56a27fa03c0c1e3206e841a261 usr/share/kphotoalbum/demo/new_wave_2.jpg photos/kphotoalbum/new_wave_2.jpg
kphotoalbum c6b1c79236388d3a7608ce1b8702a613f3d62105e36dfebc1fce4efe16e42560 usr/share/kphotoalbum/demo/pool.jpg photos/kphotoalbum/pool.jpg
kphotoalbum 82f0e4ec1906a55bd25050bbbc91f4af9607c10d38535cc3dbd55522a00a132f usr/share/kphotoalbum/demo/pool_2.jpg photos/kphotoalbum/pool_2.jpg
kphotoalbum 12f4d580dff54dab5a4b0c81f4f208cdb1d134782c7b23d2f8c8bab09a80d458 usr/share/kphotoalbum/demo/qt-logo.jpg photos/kphotoalbum/qt-logo.jpg
kphotoalbum d7c724e47d68b9f9483b14a9a21235c2ba6c9b3bffd1be49a344391e4c189760 usr/share/kphotoalbum/demo/skagen.jpg photos/kphotoalbum/skagen.jpg
kphotoalbum 17ca43c9fb3b60ad27c63e3a418bff2090999e96bd7a9c7f2c46fb58de899a72 usr/share/kphotoalbum/demo/skagen_2.jpg photos/kphotoalbum/skagen_2.jpg
kphotoalbum 7106574608681e7e3387bdc299663cbce521099e9fbff611decf227ee19e7780 usr/share/kphotoalbum/demo/snow.jpg photos/kphotoalbum/snow.jpg
kphotoalbum 4d222fe255566ab7249db968d28aeed2c1ef5508ea79da870d7a5c5cfa290f78 usr/share/kphotoalbum/demo/spiff.jpg photos/kphotoalbum/spiff.jpg
kphotoalbum 9bbab84f204329e1def8c39dda58706aaccb4a913ced00c2593b299a971d2a53 usr/share/kphotoalbum/demo/spiff_2.jpg photos/kphotoalbum/spiff_2.jpg
kphotoalbum da4a44a03272bbaabc9aa384137f2531fe2a7c0075bc761be001c7b4d2eeb4ee usr/share/kphotoalbum/demo/sunset.jpg photos/kphotoalbum/sunset.jpg
kphotoalbum 1e5e3880f65a857181ec98b9fb686e1ebfd03fc6808f002d83aefe758eacece1 usr/share/kphotoalbum/demo/wayne.jpg photos/kphotoalbum/wayne.jpg
"

die() {
    echo "fetch_real: error: $*" >&2
    exit 1
}

[ $# -eq 1 ] || { usage >&2; exit 2; }
case "$1" in -h | --help) usage; exit 0 ;; -*) usage >&2; exit 2 ;; esac
cache=$1
real="$cache/real"

have_all() { # 0 when every file of package $1 (or of all packages: "") is in place
    local pkg sum src dst
    while read -r pkg sum src dst; do
        [ -n "$pkg" ] || continue
        [ -z "$1" ] || [ "$pkg" = "$1" ] || continue
        [ -f "$real/$dst" ] || return 1
        [ "$(sha256sum "$real/$dst" | cut -d' ' -f1)" = "$sum" ] || return 1
    done <<<"$FILES"
    return 0
}

nfiles=$(grep -c . <<<"$FILES")
if have_all ""; then
    echo "fetch_real: $real is complete ($nfiles files checked), nothing to download" >&2
    echo "$real"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
    die "apt-get and dpkg-deb are needed (Debian or Ubuntu); elsewhere pass your own photographs to 'cored synth --real DIR'"
fi
command -v sha256sum >/dev/null 2>&1 || die "sha256sum (coreutils) is needed"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cored-fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$real"
# as root, apt drops to the _apt user for downloads; let it write there (no warning)
if [ "$(id -u)" = 0 ] && id _apt >/dev/null 2>&1; then chown _apt "$tmp/debs"; fi
host_arch=$(dpkg --print-architecture 2>/dev/null || echo unknown)
updated=0

download() { # package version
    local log="$tmp/apt.log"
    if (cd "$tmp/debs" && apt-get download -q "$1=$2") >"$log" 2>&1; then return 0; fi
    if [ "$updated" = 0 ] && [ "$(id -u)" = 0 ]; then
        echo "fetch_real: cannot download $1=$2 yet; refreshing the package lists (apt-get update)" >&2
        apt-get update -qq >"$tmp/update.log" 2>&1 ||
            die "apt-get update failed (is the network reachable?):$(tail -n 3 "$tmp/update.log" | sed 's/^/ /')"
        updated=1
        if (cd "$tmp/debs" && apt-get download -q "$1=$2") >"$log" 2>&1; then return 0; fi
    fi
    echo "fetch_real: apt-get said:" >&2
    sed 's/^/  /' "$log" >&2
    if [ "$(id -u)" != 0 ]; then
        die "cannot download package $1 version $2; run 'sudo apt-get update' and retry, or pass your own photographs to 'cored synth --real DIR'"
    fi
    die "cannot download package $1 version $2 from the configured Debian mirror (network down, or the version is no longer there); pass your own photographs to 'cored synth --real DIR'"
}

while read -r pkg ver arch sum size; do
    [ -n "$pkg" ] || continue
    if have_all "$pkg"; then continue; fi
    echo "fetch_real: $pkg $ver ($((size / 1024)) KiB)" >&2
    download "$pkg" "$ver"
    deb=""
    for f in "$tmp/debs/${pkg}_"*.deb; do [ -f "$f" ] && deb=$f && break; done
    [ -n "$deb" ] || die "apt-get download $pkg=$ver left no .deb file"
    if [ "$arch" = all ] || [ "$arch" = "$host_arch" ]; then
        got=$(sha256sum "$deb" | cut -d' ' -f1)
        [ "$got" = "$sum" ] || die "package $pkg $ver: SHA-256 of $(basename "$deb") is $got, expected $sum (corrupt download or a changed package)"
    else
        echo "fetch_real: $pkg is $arch-specific and this is $host_arch: its .deb hash is not pinned here; every file is still checked" >&2
    fi
    dpkg-deb -x "$deb" "$tmp/x-$pkg" || die "package $pkg $ver: dpkg-deb cannot unpack $(basename "$deb")"
    while read -r fpkg fsum src dst; do
        [ "$fpkg" = "$pkg" ] || continue
        [ -f "$tmp/x-$pkg/$src" ] || die "package $pkg $ver: /$src is missing"
        got=$(sha256sum "$tmp/x-$pkg/$src" | cut -d' ' -f1)
        [ "$got" = "$fsum" ] || die "package $pkg $ver: SHA-256 of /$src is $got, expected $fsum"
        mkdir -p "$(dirname "$real/$dst")"
        cp "$tmp/x-$pkg/$src" "$real/$dst.part"
        chmod 644 "$real/$dst.part"
        mv -f "$real/$dst.part" "$real/$dst"
    done <<<"$FILES"
    rm -rf "$tmp/x-$pkg" "$deb"
done <<<"$PACKAGES"

have_all "" || die "$real is still incomplete after fetching (a file changed while copying?)"
echo "fetch_real: $real is complete: $nfiles files (103 photographs and 4 face-box XML files)" >&2
echo "$real"
