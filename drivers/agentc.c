#include "agentc.h"

#include <stdlib.h>

#include "../model/banned.h"

void agentc_free(struct agentc *a)
{
	if (!a)
		return;
	if (a->ops && a->ops->free)
		a->ops->free(a->state);
	free(a);
}
