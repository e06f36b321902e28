/* Long double (x87) workout for x87_guest_test.ts: built static on the host, run on the host and in the guest,
 * outputs compared line by line. Exact formats (%La) for the basic operations, 18 digits for libm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
  volatile long double third = 1.0L / 3.0L, big = 1e4000L, tiny = 1e-4940L;
  printf("third %La %.25Lf\n", third, third);
  printf("sqrt2 %La %Lf\n", sqrtl(2.0L), sqrtl(2.0L));
  printf("strtold %La\n", strtold("3.14159265358979323846264338327950288", NULL));
  printf("big %Lg tiny %Lg denorm %La\n", big, tiny, tiny / 1e10L);
  printf("mix %La\n", (third * 3.0L - 1.0L) + 0.1L * 0.2L);
  long double s = 0;
  for (int i = 1; i <= 1000; i++) s += 1.0L / i;
  printf("harmonic %La %.20Lg\n", s, s);
  printf("fmodl %La remainderl %La\n", fmodl(1e30L, 7.0L), remainderl(1e30L, 7.0L));
  printf("rint %.0Lf %.0Lf %lld\n", rintl(2.5L), nearbyintl(-3.5L), llrintl(1e18L + 0.5L));
  printf("conv %.17g %.9g %d\n", (double)third, (float)third, (int)(third * 1e9L));
  printf("libm %.18Lg %.18Lg %.18Lg %.18Lg\n", sinl(1.0L), cosl(2.0L), atan2l(1.0L, 3.0L), tanl(0.5L));
  printf("libm2 %.18Lg %.18Lg %.18Lg %.18Lg\n", expl(1.0L), logl(10.0L), log2l(3.0L), powl(2.0L, 0.5L));
  for (long double x = 1; x <= 2.0001L; x += 0.25L) printf("%Lg ", x);
  printf("\n");
  return 0;
}
