/* placeholder until the layer lands */
typedef int vfsd_placeholder_t;
