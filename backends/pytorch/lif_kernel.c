/* Fused multi-step LIF forward / backward (snnc PyTorch backend, see neuron.py).
 *
 * One pass over the neurons; each neuron's T steps run in registers. The float arithmetic is
 * exactly PyTorch's for the same formulas (float32, no FMA contraction: build with
 * -ffp-contract=off), so spikes are bit-identical to the pure-torch path and to the
 * equations. Membranes are saved as float32 or IEEE half (_Float16, round to nearest even).
 */
#include <math.h>
#include <stdint.h>

#define SUR_TRIANGLE 0
#define SUR_FAST_SIGMOID 1
#define SUR_ARCTAN 2

static inline float surrogate(float u, float theta, float alpha, float width, int kind) {
    float d = u - theta;
    if (kind == SUR_TRIANGLE) {
        float v = 1.0f - fabsf(d) / width;
        return (v > 0.0f ? v : 0.0f) * alpha;
    }
    if (kind == SUR_FAST_SIGMOID) {
        float v = 1.0f + fabsf(d) / width;
        return alpha / (v * v);
    }
    float v = d * (3.14159265358979323846f / width);
    return alpha / (1.0f + v * v);
}

void lif_forward(const float *x, int64_t x_steps, int64_t n, int64_t steps, float lam,
                 float theta, int zero, int gt, float *out, float *mem32, _Float16 *mem16,
                 uint8_t *spk, float *state) {
    /* t outer, neurons inner (vectorised); state[n] carries u_{t-1} in float32, out[t-1]
       holds o_{t-1}. */
    for (int64_t t = 0; t < steps; t++) {
        const float *xt = x + (x_steps > 1 ? t : 0) * n;
        float *ot = out + t * n;
        const float *op = out + (t - 1) * n;
        float *ut = mem32 ? mem32 + t * n : 0;
        _Float16 *ht = mem16 ? mem16 + t * n : 0;
        for (int64_t i = 0; i < n; i++) {
            float u;
            if (t == 0) {
                u = xt[i];
            } else {
                float uprev = state[i];
                u = zero ? xt[i] + lam * (uprev * (1.0f - op[i]))
                         : xt[i] + lam * (uprev - theta * op[i]);
            }
            state[i] = u;
            if (ht) ht[i] = (_Float16)u;
            if (ut) ut[i] = u;
            float o = (gt ? u > theta : u >= theta) ? 1.0f : 0.0f;
            ot[i] = o;
            if (spk) spk[t * n + i] = (uint8_t)(o != 0.0f);
        }
    }
}

void lif_backward(const float *grad, const float *mem32, const _Float16 *mem16,
                  const uint8_t *spk, int64_t n, int64_t steps, float lam, float theta,
                  int zero, int detach, int kind, float alpha, float width, int is_static,
                  float *gx, float *scratch) {
    /* scratch[n] holds g_{t+1}; gx[t] (or the running sum when the input is static). */
    float lt = lam * theta;
    for (int64_t t = steps - 1; t >= 0; t--) {
        const float *gt_ = grad + t * n;
        float *dst = is_static ? gx : gx + t * n;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = t * n + i;
            float u = mem32 ? mem32[j] : (float)mem16[j];
            float s = surrogate(u, theta, alpha, width, kind);
            float g;
            if (t == steps - 1) {
                g = gt_[i] * s;
            } else {
                float gn = scratch[i];
                float go = detach ? gt_[i] : (zero ? gt_[i] - lam * u * gn : gt_[i] - lt * gn);
                float keep = zero ? lam * gn * (spk[j] ? 0.0f : 1.0f) : lam * gn;
                g = go * s + keep;
            }
            scratch[i] = g;
            if (is_static)
                dst[i] = (t == steps - 1) ? g : dst[i] + g;
            else
                dst[i] = g;
        }
    }
}
